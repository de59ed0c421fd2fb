//! The seeded data generator: realistic companies and contacts for both simulators, derived
//! deterministically from one seed (ChaCha8), so that `POST /_sandbox/reset` and every test run
//! rebuild exactly the same world.
//!
//! Proportions (each side gets exactly `companies` companies and `contacts` contacts):
//! - **Companies.** 40 % exist on both sides (same domain; the names differ in case and legal
//!   suffix, e.g. HubSpot `ACME Logistics` vs Accelo `Acme Logistics Pty Ltd`; Accelo websites in
//!   varied forms such as `https://www.acme.com.au/`); the rest exist on one side only. About 5 %
//!   of HubSpot companies have no domain, 15 % no phone, 10 % no lifecycle stage, 3 % additional
//!   domains; about 10 % of Accelo companies have no website, 15 % no phone, 20 % no postal
//!   address.
//! - **Contacts.** 40 % are the same person on both sides (same email, differently cased on one
//!   side for one in ten of them), attached to twin companies when they can be; 10 % of HubSpot
//!   contacts have no company, 5 % have a second, non-primary company; every Accelo contact has
//!   an affiliation and 3 % have a second one; 15 % use a free-mail address; phones, mobiles,
//!   job titles are blank for a share of records (30 %, 40–60 %, 25 %).
//! - **Names** come from ten countries with their legal suffixes, cities and states, including
//!   non-ASCII names (`Müller`, `Société Générale`, `Ōkubo`, `Łukasz`, `Søren`).
//! - **Statuses.** HubSpot lifecycle stages and lead statuses; Accelo company statuses Active /
//!   Prospect / Lead / Inactive / Former Client and contact statuses Active / Prospect /
//!   Inactive, correlated with the twin's lifecycle stage for shared records.
//!
//! Seeded timestamps lie between 2023-01-01 and 2025-01-01, so every live change is newer.

use std::collections::{BTreeMap, HashSet};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 2023-01-01T00:00:00Z in seconds: the earliest seeded creation time.
const EPOCH_START_S: i64 = 1_672_531_200;
/// Two years: seeded records are created within `[EPOCH_START_S, EPOCH_START_S + SPAN_S)`.
const SPAN_S: i64 = 2 * 365 * 24 * 3600;

/// First HubSpot id (ids exceed 2^32 like real ones).
pub const HUBSPOT_FIRST_ID: u64 = 10_000_000_000;

/// A country of the geography table (id = index + 1).
#[derive(Debug, Clone, Copy)]
pub struct Country {
    /// Accelo title.
    pub title: &'static str,
    /// ISO 3166 alpha-2 code.
    pub code: &'static str,
    /// Legal suffixes used by companies there.
    pub suffixes: &'static [&'static str],
    /// Top-level domain of company websites.
    pub tld: &'static str,
    /// Dialling prefix.
    pub dial: &'static str,
    /// Cities: (city, state title, state abbreviation, postcode).
    pub cities: &'static [(&'static str, &'static str, &'static str, &'static str)],
    /// Given names.
    pub first: &'static [&'static str],
    /// Family names.
    pub last: &'static [&'static str],
    /// Free-mail domains.
    pub freemail: &'static [&'static str],
    /// Street names.
    pub streets: &'static [&'static str],
}

/// The countries every generated address and the Accelo country/state tables come from.
pub const COUNTRIES: &[Country] = &[
    Country {
        title: "Australia",
        code: "AU",
        suffixes: &["Pty Ltd", "Pty. Ltd.", "Ltd"],
        tld: "com.au",
        dial: "+61",
        cities: &[
            ("Sydney", "New South Wales", "NSW", "2000"),
            ("Melbourne", "Victoria", "VIC", "3000"),
            ("Brisbane", "Queensland", "QLD", "4000"),
            ("Perth", "Western Australia", "WA", "6000"),
            ("Adelaide", "South Australia", "SA", "5000"),
            ("Hobart", "Tasmania", "TAS", "7000"),
        ],
        first: &[
            "Olivia",
            "Jack",
            "Charlotte",
            "William",
            "Mia",
            "Noah",
            "Chloe",
            "Liam",
            "Matilda",
            "Lachlan",
        ],
        last: &[
            "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "O'Brien",
            "Kelly", "Murphy",
        ],
        freemail: &["bigpond.com", "gmail.com", "outlook.com"],
        streets: &[
            "George St",
            "Collins St",
            "Queen St",
            "Hay St",
            "King William St",
        ],
    },
    Country {
        title: "United States",
        code: "US",
        suffixes: &["Inc.", "LLC", "Corp."],
        tld: "com",
        dial: "+1",
        cities: &[
            ("New York", "New York", "NY", "10001"),
            ("San Francisco", "California", "CA", "94105"),
            ("Austin", "Texas", "TX", "73301"),
            ("Seattle", "Washington", "WA", "98101"),
            ("Boston", "Massachusetts", "MA", "02108"),
            ("Chicago", "Illinois", "IL", "60601"),
        ],
        first: &[
            "James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda", "José",
            "Aaliyah",
        ],
        last: &[
            "Johnson",
            "Garcia",
            "Miller",
            "Davis",
            "Rodriguez",
            "Martinez",
            "Anderson",
            "Thomas",
            "Jackson",
            "White",
        ],
        freemail: &["gmail.com", "yahoo.com", "outlook.com"],
        streets: &["Main St", "Market St", "5th Ave", "Congress Ave", "Pike St"],
    },
    Country {
        title: "United Kingdom",
        code: "GB",
        suffixes: &["Ltd", "Limited", "PLC", "LLP"],
        tld: "co.uk",
        dial: "+44",
        cities: &[
            ("London", "England", "ENG", "EC1A 1BB"),
            ("Manchester", "England", "ENG", "M1 1AE"),
            ("Edinburgh", "Scotland", "SCT", "EH1 1YZ"),
            ("Cardiff", "Wales", "WLS", "CF10 1EP"),
        ],
        first: &[
            "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Siobhán", "Rhys", "Eilidh",
            "Freddie",
        ],
        last: &[
            "Evans",
            "Roberts",
            "Walker",
            "Wright",
            "Thompson",
            "Hughes",
            "MacDonald",
            "Ó Súilleabháin",
            "Patel",
            "Clarke",
        ],
        freemail: &["btinternet.com", "gmail.com", "hotmail.co.uk"],
        streets: &[
            "High Street",
            "Station Road",
            "Church Lane",
            "Princes Street",
        ],
    },
    Country {
        title: "Germany",
        code: "DE",
        suffixes: &["GmbH", "AG", "GmbH & Co. KG"],
        tld: "de",
        dial: "+49",
        cities: &[
            ("München", "Bayern", "BY", "80331"),
            ("Berlin", "Berlin", "BE", "10115"),
            ("Köln", "Nordrhein-Westfalen", "NW", "50667"),
            ("Hamburg", "Hamburg", "HH", "20095"),
            ("Düsseldorf", "Nordrhein-Westfalen", "NW", "40213"),
        ],
        first: &[
            "Jürgen",
            "Anna",
            "Lukas",
            "Lea",
            "Jörg",
            "Sophie",
            "Maximilian",
            "Hannah",
            "Björn",
            "Ümit",
        ],
        last: &[
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weiß",
            "Schröder",
            "Groß",
            "Köhler",
            "Bauer",
            "Wagner",
        ],
        freemail: &["gmx.de", "web.de", "t-online.de"],
        streets: &[
            "Hauptstraße",
            "Bahnhofstraße",
            "Königsallee",
            "Schillerstraße",
        ],
    },
    Country {
        title: "France",
        code: "FR",
        suffixes: &["SARL", "S.A.", "SAS"],
        tld: "fr",
        dial: "+33",
        cities: &[
            ("Paris", "Île-de-France", "IDF", "75001"),
            ("Lyon", "Auvergne-Rhône-Alpes", "ARA", "69001"),
            ("Marseille", "Provence-Alpes-Côte d'Azur", "PAC", "13001"),
            ("Toulouse", "Occitanie", "OCC", "31000"),
        ],
        first: &[
            "François",
            "Amélie",
            "Hélène",
            "Jérôme",
            "Chloé",
            "Loïc",
            "Zoé",
            "Mathéo",
            "Inès",
            "Gaëlle",
        ],
        last: &[
            "Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Laurent", "Girard", "Roussel",
            "Faure", "Benoît",
        ],
        freemail: &["orange.fr", "free.fr", "gmail.com"],
        streets: &[
            "Rue de Rivoli",
            "Avenue Jean Jaurès",
            "Rue de la République",
        ],
    },
    Country {
        title: "Japan",
        code: "JP",
        suffixes: &["K.K.", "Co., Ltd.", "G.K."],
        tld: "co.jp",
        dial: "+81",
        cities: &[
            ("Tōkyō", "Tōkyō", "13", "100-0001"),
            ("Ōsaka", "Ōsaka", "27", "530-0001"),
            ("Kyōto", "Kyōto", "26", "600-8001"),
            ("Nagoya", "Aichi", "23", "450-0002"),
        ],
        first: &[
            "Haruto", "Yui", "Sōta", "Aoi", "Yūki", "Hina", "Kōki", "Mei", "Ren", "Sakura",
        ],
        last: &[
            "Ōkubo",
            "Satō",
            "Suzuki",
            "Takahashi",
            "Tanaka",
            "Itō",
            "Watanabe",
            "Yamamoto",
            "Nakamura",
            "Kobayashi",
        ],
        freemail: &["yahoo.co.jp", "gmail.com"],
        streets: &["Chūō-dōri", "Meiji-dōri", "Ginza 4-chōme"],
    },
    Country {
        title: "New Zealand",
        code: "NZ",
        suffixes: &["Limited", "Ltd"],
        tld: "co.nz",
        dial: "+64",
        cities: &[
            ("Auckland", "Auckland", "AUK", "1010"),
            ("Wellington", "Wellington", "WGN", "6011"),
            ("Christchurch", "Canterbury", "CAN", "8011"),
        ],
        first: &[
            "Aroha", "Nikau", "Isla", "Tama", "Mereana", "Hunter", "Ruby", "Wiremu", "Kauri",
            "Manaia",
        ],
        last: &[
            "Ngata", "Parata", "Walker", "Te Whare", "Tāwhiao", "Henare", "Campbell", "Reid",
            "Young", "Stewart",
        ],
        freemail: &["xtra.co.nz", "gmail.com"],
        streets: &["Queen Street", "Lambton Quay", "Colombo Street"],
    },
    Country {
        title: "Sweden",
        code: "SE",
        suffixes: &["AB"],
        tld: "se",
        dial: "+46",
        cities: &[
            ("Stockholm", "Stockholms län", "AB", "111 20"),
            ("Göteborg", "Västra Götalands län", "O", "411 01"),
            ("Malmö", "Skåne län", "M", "211 20"),
        ],
        first: &[
            "Åsa", "Björn", "Søren", "Märta", "Lars", "Ingrid", "Göran", "Elin", "Nils", "Astrid",
        ],
        last: &[
            "Åkesson",
            "Johansson",
            "Lindqvist",
            "Sjöberg",
            "Ångström",
            "Nilsson",
            "Berglund",
            "Lundgren",
            "Håkansson",
            "Persson",
        ],
        freemail: &["telia.com", "gmail.com"],
        streets: &["Drottninggatan", "Kungsgatan", "Storgatan"],
    },
    Country {
        title: "Poland",
        code: "PL",
        suffixes: &["Sp. z o.o.", "S.A."],
        tld: "pl",
        dial: "+48",
        cities: &[
            ("Warszawa", "Mazowieckie", "MZ", "00-001"),
            ("Kraków", "Małopolskie", "MA", "30-001"),
            ("Łódź", "Łódzkie", "LD", "90-001"),
        ],
        first: &[
            "Łukasz",
            "Agnieszka",
            "Paweł",
            "Małgorzata",
            "Michał",
            "Zofia",
            "Wojciech",
            "Katarzyna",
            "Jakub",
            "Żaneta",
        ],
        last: &[
            "Nowak",
            "Kowalski",
            "Wiśniewski",
            "Wójcik",
            "Kamiński",
            "Lewandowski",
            "Zieliński",
            "Szymański",
            "Woźniak",
            "Dąbrowski",
        ],
        freemail: &["wp.pl", "onet.pl", "gmail.com"],
        streets: &["ul. Marszałkowska", "ul. Floriańska", "ul. Piotrkowska"],
    },
    Country {
        title: "Spain",
        code: "ES",
        suffixes: &["S.L.", "S.A."],
        tld: "es",
        dial: "+34",
        cities: &[
            ("Madrid", "Comunidad de Madrid", "MD", "28001"),
            ("Barcelona", "Cataluña", "CT", "08001"),
            ("Sevilla", "Andalucía", "AN", "41001"),
        ],
        first: &[
            "María", "José", "Núria", "Jesús", "Begoña", "Íñigo", "Lucía", "Álvaro", "Sofía",
            "Raúl",
        ],
        last: &[
            "García",
            "Fernández",
            "González",
            "Rodríguez",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Muñoz",
            "Ibáñez",
        ],
        freemail: &["telefonica.net", "gmail.com", "hotmail.es"],
        streets: &["Calle Mayor", "Gran Vía", "Passeig de Gràcia"],
    },
];

const ADJECTIVES: &[&str] = &[
    "Blue",
    "Northern",
    "Summit",
    "Bright",
    "Silver",
    "Golden",
    "Red",
    "Green",
    "Coastal",
    "Harbor",
    "Pacific",
    "Atlantic",
    "Rapid",
    "Prime",
    "Urban",
    "Alpine",
    "Crystal",
    "Granite",
    "Iron",
    "Evergreen",
    "Sunrise",
    "Westside",
    "Eastern",
    "Royal",
    "Modern",
    "Clever",
    "Swift",
    "Bold",
    "Quiet",
    "Lucky",
    "Oak",
    "Cedar",
    "Maple",
    "River",
    "Stone",
    "Crimson",
    "Amber",
    "Polar",
    "Solar",
    "Lunar",
];
const NOUNS: &[&str] = &[
    "Harbor", "Peak", "Bridge", "Forge", "Field", "Valley", "Ridge", "Point", "Gate", "Path",
    "Wave", "Leaf", "Tower", "Anchor", "Compass", "Beacon", "Arrow", "Falcon", "Fox", "Bear",
    "Lion", "Orbit", "Pixel", "Spark", "Circuit", "Vertex", "Canyon", "Meadow", "Lake", "Grove",
];
const TRADES: &[&str] = &[
    "Logistics",
    "Consulting",
    "Engineering",
    "Software",
    "Design",
    "Partners",
    "Holdings",
    "Solutions",
    "Systems",
    "Media",
    "Labs",
    "Foods",
    "Capital",
    "Health",
    "Energy",
    "Construction",
    "Analytics",
    "Studios",
    "Advisory",
    "Manufacturing",
];
/// Hand-picked names that must appear early (non-ASCII, well-known shapes).
const SPECIAL_NAMES: &[(&str, usize)] = &[
    ("Société Générale Conseil", 4),
    ("Müller & Söhne", 3),
    ("Ōkubo Shōji", 5),
    ("Åkesson Bygg", 7),
    ("Łódź Logistyka", 8),
    ("Acme Logistics", 0),
    ("Café Ñandú", 9),
    ("Zürich Treuhand", 3),
];

/// HubSpot lifecycle stages with their seeding weights.
const LIFECYCLE: &[(&str, u32)] = &[
    ("subscriber", 10),
    ("lead", 30),
    ("marketingqualifiedlead", 10),
    ("salesqualifiedlead", 10),
    ("opportunity", 10),
    ("customer", 25),
    ("evangelist", 5),
];
const LEAD_STATUS: &[&str] = &[
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
];
const INDUSTRIES: &[&str] = &[
    "COMPUTER_SOFTWARE",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "LOGISTICS_AND_SUPPLY_CHAIN",
    "MANAGEMENT_CONSULTING",
    "CONSTRUCTION",
    "FOOD_BEVERAGES",
    "HOSPITAL_HEALTH_CARE",
    "FINANCIAL_SERVICES",
    "MARKETING_AND_ADVERTISING",
    "MECHANICAL_OR_INDUSTRIAL_ENGINEERING",
];
const JOB_TITLES: &[&str] = &[
    "CEO",
    "CFO",
    "Operations Manager",
    "Head of Sales",
    "Marketing Director",
    "Office Manager",
    "Software Engineer",
    "Accountant",
    "Project Manager",
    "Geschäftsführer",
    "Directrice générale",
    "Procurement Lead",
];

/// Accelo company statuses: (id, title, standing, color, ordering, start).
pub const COMPANY_STATUSES: &[(u64, &str, &str, &str, u64, bool)] = &[
    (1, "Active", "active", "green", 1, true),
    (2, "Prospect", "potential", "blue", 2, true),
    (3, "Lead", "potential", "orange", 3, true),
    (4, "Inactive", "inactive", "grey", 4, false),
    (5, "Former Client", "inactive", "red", 5, false),
];
/// Accelo contact statuses: (id, title, standing, color, ordering, start).
pub const CONTACT_STATUSES: &[(u64, &str, &str, &str, u64, bool)] = &[
    (1, "Active", "active", "green", 1, true),
    (2, "Prospect", "potential", "blue", 2, true),
    (3, "Inactive", "inactive", "grey", 3, false),
];

/// The seeded HubSpot portal.
#[derive(Debug, Clone, Default)]
pub struct HsSeed {
    /// Companies: id, properties (without system ones), created and updated ms.
    pub companies: Vec<HsSeedRecord>,
    /// Contacts.
    pub contacts: Vec<HsSeedRecord>,
    /// Contact → company associations: (contact id, company id, primary).
    pub associations: Vec<(u64, u64, bool)>,
}

/// One seeded HubSpot record.
#[derive(Debug, Clone)]
pub struct HsSeedRecord {
    /// The record id.
    pub id: u64,
    /// Property values (non-empty).
    pub props: BTreeMap<String, String>,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Last modification time, ms.
    pub updated_ms: i64,
}

/// The seeded Accelo deployment.
#[derive(Debug, Clone, Default)]
pub struct AcSeed {
    /// Companies.
    pub companies: Vec<AcSeedCompany>,
    /// Contacts.
    pub contacts: Vec<AcSeedContact>,
    /// Affiliations.
    pub affiliations: Vec<AcSeedAffiliation>,
    /// Addresses.
    pub addresses: Vec<AcSeedAddress>,
}

/// A seeded Accelo company.
#[derive(Debug, Clone, Default)]
pub struct AcSeedCompany {
    pub id: u64,
    pub name: String,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub fax: Option<String>,
    pub comments: Option<String>,
    pub custom_id: Option<String>,
    pub status: u64,
    pub postal_address: Option<u64>,
    pub date_created: i64,
    pub date_modified: i64,
}

/// A seeded Accelo contact.
#[derive(Debug, Clone, Default)]
pub struct AcSeedContact {
    pub id: u64,
    pub firstname: String,
    pub surname: String,
    pub middlename: Option<String>,
    pub title: Option<String>,
    pub comments: Option<String>,
    pub status: u64,
    pub default_affiliation: Option<u64>,
    pub date_created: i64,
    pub date_modified: i64,
}

/// A seeded Accelo affiliation.
#[derive(Debug, Clone, Default)]
pub struct AcSeedAffiliation {
    pub id: u64,
    pub company: u64,
    pub contact: u64,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub fax: Option<String>,
    pub position: Option<String>,
    pub date_modified: i64,
}

/// A seeded Accelo address.
#[derive(Debug, Clone, Default)]
pub struct AcSeedAddress {
    pub id: u64,
    pub against_type: &'static str,
    pub against_id: u64,
    pub street1: String,
    pub street2: Option<String>,
    pub city: String,
    pub zipcode: String,
    pub state: Option<u64>,
    pub country: Option<u64>,
    pub date_modified: i64,
}

/// Both seeded worlds.
#[derive(Debug, Clone, Default)]
pub struct SeedData {
    /// The HubSpot portal.
    pub hubspot: HsSeed,
    /// The Accelo deployment.
    pub accelo: AcSeed,
}

/// What a world is generated from; kept instead of the data itself, so a reset regenerates it
/// (the same spec always gives the same world) and memory holds only the live stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSpec {
    /// Generator seed.
    pub seed: u64,
    /// Companies per system.
    pub companies: usize,
    /// Contacts per system.
    pub contacts: usize,
}

impl SeedSpec {
    /// Generates the world.
    pub fn generate(&self) -> SeedData {
        generate(self.seed, self.companies, self.contacts)
    }
}

/// The Accelo id of a country of [`COUNTRIES`].
pub fn country_id(index: usize) -> u64 {
    index as u64 + 1
}

/// The Accelo state table: (id, country index, title, abbreviation), deduplicated by
/// (country, title) in the order the cities list them.
pub fn states() -> Vec<(u64, usize, &'static str, &'static str)> {
    let mut out: Vec<(u64, usize, &'static str, &'static str)> = Vec::new();
    for (ci, c) in COUNTRIES.iter().enumerate() {
        for (_, state, abbr, _) in c.cities {
            if !out.iter().any(|(_, i, t, _)| *i == ci && t == state) {
                out.push((out.len() as u64 + 1, ci, state, abbr));
            }
        }
    }
    out
}

/// Folds a name to ASCII for domains and emails (`Müller` → `muller`, `Ōkubo` → `okubo`).
pub fn fold_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        let rep: &str = match ch {
            'à' | 'á' | 'â' | 'ä' | 'å' | 'ā' | 'ą' | 'À' | 'Á' | 'Â' | 'Ä' | 'Å' | 'Ā' | 'Ą' => {
                "a"
            }
            'æ' | 'Æ' => "ae",
            'ç' | 'ć' | 'Ç' | 'Ć' => "c",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ę' => {
                "e"
            }
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' => "i",
            'ł' | 'Ł' => "l",
            'ñ' | 'ń' | 'Ñ' | 'Ń' => "n",
            'ò' | 'ó' | 'ô' | 'ö' | 'ø' | 'ō' | 'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Ø' | 'Ō' => {
                "o"
            }
            'ś' | 'Ś' => "s",
            'ß' => "ss",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' => "u",
            'ý' | 'ÿ' | 'Ý' => "y",
            'ź' | 'ż' | 'Ź' | 'Ż' => "z",
            c if c.is_ascii_alphanumeric() => {
                out.push(c.to_ascii_lowercase());
                continue;
            }
            _ => "",
        };
        out.push_str(rep);
    }
    out
}

/// A company identity before it is rendered for one side.
struct Identity {
    base: String,
    country: usize,
    suffix: &'static str,
    domain: Option<String>,
    city: usize,
    street: String,
    phone: String,
    lifecycle: &'static str,
    industry: &'static str,
    employees: u32,
    created_s: i64,
}

/// A person before it is rendered for one side.
struct Person {
    first: String,
    last: String,
    country: usize,
    email_local: String,
    freemail: Option<&'static str>,
    phone: String,
    mobile: String,
    job: &'static str,
    lifecycle: &'static str,
    created_s: i64,
}

/// Generates both worlds from `seed`: `companies` companies and `contacts` contacts per side.
pub fn generate(seed: u64, companies: usize, contacts: usize) -> SeedData {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        domains: HashSet::new(),
    };
    let shared_companies = companies * 2 / 5;
    let only = companies - shared_companies;
    // Identity order: shared first, then HubSpot-only, then Accelo-only.
    let total = shared_companies + 2 * only;
    let identities: Vec<Identity> = (0..total).map(|i| g.identity(i)).collect();
    let hs_idx: Vec<usize> = (0..shared_companies)
        .chain(shared_companies..shared_companies + only)
        .collect();
    let ac_idx: Vec<usize> = (0..shared_companies)
        .chain(shared_companies + only..total)
        .collect();

    let mut hs = HsSeed::default();
    let mut ac = AcSeed::default();

    // ---- companies
    let mut next_hs = HUBSPOT_FIRST_ID;
    let mut hs_company_ids = Vec::with_capacity(companies);
    for (n, &i) in hs_idx.iter().enumerate() {
        next_hs += g.rng.random_range(1..=97);
        let rec = g.hs_company(next_hs, &identities[i], i < shared_companies, n);
        hs_company_ids.push(rec.id);
        hs.companies.push(rec);
    }
    let mut ac_company_ids = Vec::with_capacity(companies);
    for (n, &i) in ac_idx.iter().enumerate() {
        let id = n as u64 + 1;
        let (company, address) = g.ac_company(id, &identities[i], ac.addresses.len() as u64 + 1);
        if let Some(a) = address {
            ac.addresses.push(a);
        }
        ac_company_ids.push(id);
        ac.companies.push(company);
    }

    // ---- contacts
    // With no companies at all, people still need an employer's domain for their emails.
    let fallback = identities.is_empty().then(|| g.identity(usize::MAX));
    let ident_at = |i: Option<usize>| -> &Identity {
        match (i.and_then(|i| identities.get(i)), &fallback) {
            (Some(id), _) => id,
            (None, Some(f)) => f,
            (None, None) => &identities[0],
        }
    };
    let shared_people = contacts * 2 / 5;
    let only_people = contacts - shared_people;
    let total_people = shared_people + 2 * only_people;
    let mut emails_hs: HashSet<String> = HashSet::new();
    let mut emails_ac: HashSet<String> = HashSet::new();
    let mut next_hs_contact = HUBSPOT_FIRST_ID;
    let mut next_aff = 1u64;
    let mut hs_count = 0usize;
    let mut ac_count = 0usize;
    for p in 0..total_people {
        let person = g.person();
        let shared = p < shared_people;
        let on_hs = shared || p < shared_people + only_people;
        let on_ac = shared || p >= shared_people + only_people;
        // The company slot: shared people prefer shared companies so both sides agree.
        let slot = if shared && shared_companies > 0 {
            g.rng.random_range(0..shared_companies)
        } else {
            g.rng.random_range(0..companies.max(1))
        };
        let email_domain = |ident: &Identity| {
            person
                .freemail
                .map(str::to_string)
                .or_else(|| ident.domain.clone())
                .unwrap_or_else(|| format!("{}.example", fold_ascii(&ident.base)))
        };
        let upper_one_side = shared && g.rng.random_bool(0.1);
        if on_hs && hs_count < contacts {
            hs_count += 1;
            next_hs_contact += g.rng.random_range(1..=61);
            let has_company = companies > 0 && !g.rng.random_bool(0.10);
            let ident = ident_at(hs_idx.get(slot).copied());
            let mut email = unique_email(&mut emails_hs, &person.email_local, &email_domain(ident));
            if upper_one_side {
                email = title_case_email(&email);
            }
            let rec = g.hs_contact(
                next_hs_contact,
                &person,
                &email,
                has_company.then_some(ident),
            );
            if has_company && !hs_company_ids.is_empty() {
                let company = hs_company_ids[slot.min(hs_company_ids.len() - 1)];
                hs.associations.push((rec.id, company, true));
                if g.rng.random_bool(0.05) && hs_company_ids.len() > 1 {
                    let other = hs_company_ids[g.rng.random_range(0..hs_company_ids.len())];
                    if other != company {
                        hs.associations.push((rec.id, other, false));
                    }
                }
            }
            hs.contacts.push(rec);
        }
        if on_ac && ac_count < contacts && !ac_company_ids.is_empty() {
            ac_count += 1;
            let company_n = slot.min(ac_company_ids.len() - 1);
            let ident = ident_at(ac_idx.get(company_n).copied());
            let email = unique_email(&mut emails_ac, &person.email_local, &email_domain(ident));
            let contact_id = ac_count as u64;
            let aff = g.ac_affiliation(
                next_aff,
                ac_company_ids[company_n],
                contact_id,
                &person,
                &email,
            );
            next_aff += 1;
            let contact = g.ac_contact(contact_id, &person, aff.id);
            ac.affiliations.push(aff);
            if g.rng.random_bool(0.03) && ac_company_ids.len() > 1 {
                let other = ac_company_ids[g.rng.random_range(0..ac_company_ids.len())];
                if other != ac_company_ids[company_n] {
                    let second_email = unique_email(
                        &mut emails_ac,
                        &format!("{}.board", person.email_local),
                        "example.org",
                    );
                    let mut second =
                        g.ac_affiliation(next_aff, other, contact_id, &person, &second_email);
                    second.position = Some("Board Member".to_string());
                    next_aff += 1;
                    ac.affiliations.push(second);
                }
            }
            ac.contacts.push(contact);
        }
    }
    SeedData {
        hubspot: hs,
        accelo: ac,
    }
}

fn unique_email(seen: &mut HashSet<String>, local: &str, domain: &str) -> String {
    let mut candidate = format!("{local}@{domain}");
    let mut n = 2;
    while !seen.insert(candidate.to_ascii_lowercase()) {
        candidate = format!("{local}{n}@{domain}");
        n += 1;
    }
    candidate
}

fn title_case_email(email: &str) -> String {
    let mut out = String::with_capacity(email.len());
    let mut up = true;
    for ch in email.chars() {
        if up && ch.is_ascii_alphabetic() {
            out.push(ch.to_ascii_uppercase());
            up = false;
        } else {
            out.push(ch);
        }
        if ch == '.' || ch == '@' {
            up = ch == '.';
        }
    }
    out
}

struct Gen {
    rng: ChaCha8Rng,
    domains: HashSet<String>,
}

impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // Every list passed here is a non-empty constant.
        items.choose(&mut self.rng).unwrap_or(&items[0])
    }

    fn weighted(&mut self, items: &[(&'static str, u32)]) -> &'static str {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.random_range(0..total.max(1));
        for (v, w) in items {
            if roll < *w {
                return v;
            }
            roll -= w;
        }
        items[0].0
    }

    fn phone(&mut self, country: usize) -> String {
        let c = &COUNTRIES[country];
        format!(
            "{} {} {:04} {:04}",
            c.dial,
            self.rng.random_range(2..=9),
            self.rng.random_range(0..10_000),
            self.rng.random_range(0..10_000)
        )
    }

    fn created_s(&mut self) -> i64 {
        EPOCH_START_S + self.rng.random_range(0..SPAN_S - 120 * 24 * 3600)
    }

    fn identity(&mut self, i: usize) -> Identity {
        let (base, country) = if let Some((name, c)) = SPECIAL_NAMES.get(i) {
            (name.to_string(), *c)
        } else {
            let country = self.rng.random_range(0..COUNTRIES.len());
            let c = &COUNTRIES[country];
            let base = match self.rng.random_range(0..10) {
                0..=4 => format!(
                    "{} {} {}",
                    self.pick(ADJECTIVES),
                    self.pick(NOUNS),
                    self.pick(TRADES)
                ),
                5..=6 => format!("{} {}", self.pick(c.last), self.pick(TRADES)),
                7 => format!("{} & {}", self.pick(c.last), self.pick(c.last)),
                _ => format!("{}{}", self.pick(NOUNS), self.pick(TRADES).to_lowercase()),
            };
            (base, country)
        };
        let c = &COUNTRIES[country];
        let suffix = *self.pick(c.suffixes);
        let domain = if self.rng.random_bool(0.05) {
            None
        } else {
            let stem = fold_ascii(&base);
            let stem = if stem.len() > 24 || self.rng.random_bool(0.2) {
                // an acronym domain, like many real firms
                base.split_whitespace()
                    .filter_map(|w| w.chars().next())
                    .map(|ch| fold_ascii(&ch.to_string()))
                    .collect::<String>()
            } else {
                stem
            };
            let stem = if stem.is_empty() {
                "company".to_string()
            } else {
                stem
            };
            let mut d = format!("{stem}.{}", c.tld);
            let mut n = 2;
            while !self.domains.insert(d.clone()) {
                d = format!("{stem}{n}.{}", c.tld);
                n += 1;
            }
            Some(d)
        };
        let city = self.rng.random_range(0..c.cities.len());
        let street = format!("{} {}", self.rng.random_range(1..400), self.pick(c.streets));
        Identity {
            base,
            country,
            suffix,
            domain,
            city,
            street,
            phone: self.phone(country),
            lifecycle: self.weighted(LIFECYCLE),
            industry: INDUSTRIES[self.rng.random_range(0..INDUSTRIES.len())],
            employees: self.rng.random_range(1..5000),
            created_s: self.created_s(),
        }
    }

    fn person(&mut self) -> Person {
        let country = self.rng.random_range(0..COUNTRIES.len());
        let c = &COUNTRIES[country];
        let first = self.pick(c.first).to_string();
        let last = self.pick(c.last).to_string();
        let f = fold_ascii(&first);
        let l = fold_ascii(&last);
        let email_local = match self.rng.random_range(0..3) {
            0 => format!("{f}.{l}"),
            1 => format!("{}{l}", f.chars().next().unwrap_or('x')),
            _ => f.clone(),
        };
        let freemail = self.rng.random_bool(0.15).then(|| *self.pick(c.freemail));
        Person {
            phone: self.phone(country),
            mobile: self.phone(country),
            first,
            last,
            country,
            email_local,
            freemail,
            job: JOB_TITLES[self.rng.random_range(0..JOB_TITLES.len())],
            lifecycle: self.weighted(LIFECYCLE),
            created_s: self.created_s(),
        }
    }

    /// HubSpot's rendering of a company: the name varies in case and suffix from Accelo's.
    fn hs_company(&mut self, id: u64, ident: &Identity, shared: bool, n: usize) -> HsSeedRecord {
        let c = &COUNTRIES[ident.country];
        let name = if shared {
            match self.rng.random_range(0..4) {
                0 => ident.base.clone(),
                1 => ident.base.to_uppercase(),
                2 => format!("{} {}", ident.base, ident.suffix),
                _ => ident.base.to_lowercase(),
            }
        } else {
            ident.base.clone()
        };
        let mut p = BTreeMap::new();
        p.insert("name".to_string(), name);
        if let Some(d) = &ident.domain {
            p.insert("domain".to_string(), d.clone());
            p.insert("website".to_string(), format!("https://www.{d}"));
            if self.rng.random_bool(0.03) {
                p.insert(
                    "hs_additional_domains".to_string(),
                    format!("{}.example;{}-old.example", fold_ascii(&ident.base), n),
                );
            }
        }
        if !self.rng.random_bool(0.15) {
            p.insert("phone".to_string(), ident.phone.clone());
        }
        let (city, state, _, zip) = c.cities[ident.city];
        if !self.rng.random_bool(0.10) {
            p.insert("city".to_string(), city.to_string());
            p.insert("state".to_string(), state.to_string());
            p.insert("zip".to_string(), zip.to_string());
            p.insert("address".to_string(), ident.street.clone());
        }
        p.insert("country".to_string(), c.title.to_string());
        if !self.rng.random_bool(0.10) {
            p.insert("lifecyclestage".to_string(), ident.lifecycle.to_string());
        }
        p.insert("industry".to_string(), ident.industry.to_string());
        p.insert("numberofemployees".to_string(), ident.employees.to_string());
        if self.rng.random_bool(0.5) {
            p.insert(
                "annualrevenue".to_string(),
                (u64::from(ident.employees) * 120_000).to_string(),
            );
        }
        if self.rng.random_bool(0.2) {
            p.insert(
                "description".to_string(),
                format!("{} based in {city}.", ident.base),
            );
        }
        let created_ms = ident.created_s * 1000 + self.rng.random_range(0..1000);
        let updated_ms = created_ms + self.rng.random_range(0..90 * 24 * 3600 * 1000i64);
        HsSeedRecord {
            id,
            props: p,
            created_ms,
            updated_ms,
        }
    }

    fn ac_status_for(&mut self, lifecycle: &str) -> u64 {
        if self.rng.random_bool(0.2) {
            return self.rng.random_range(1..=COMPANY_STATUSES.len() as u64);
        }
        match lifecycle {
            "customer" | "evangelist" => 1,
            "opportunity" | "salesqualifiedlead" => 2,
            "lead" | "marketingqualifiedlead" | "subscriber" => 3,
            _ => 4,
        }
    }

    fn ac_company(
        &mut self,
        id: u64,
        ident: &Identity,
        address_id: u64,
    ) -> (AcSeedCompany, Option<AcSeedAddress>) {
        let c = &COUNTRIES[ident.country];
        let name = if self.rng.random_bool(0.8) {
            format!("{} {}", ident.base, ident.suffix)
        } else {
            ident.base.clone()
        };
        let website = ident.domain.as_ref().and_then(|d| {
            if self.rng.random_bool(0.10) {
                return None;
            }
            Some(match self.rng.random_range(0..4) {
                0 => format!("https://www.{d}/"),
                1 => format!("www.{d}"),
                2 => format!("http://{d}"),
                _ => d.clone(),
            })
        });
        let date_created = ident.created_s + self.rng.random_range(0..30 * 24 * 3600);
        let date_modified = date_created + self.rng.random_range(0..90 * 24 * 3600);
        let address = (!self.rng.random_bool(0.2)).then(|| {
            let (city, state, _, zip) = c.cities[ident.city];
            let state_id = states()
                .iter()
                .find(|(_, ci, t, _)| *ci == ident.country && *t == state)
                .map(|s| s.0);
            AcSeedAddress {
                id: address_id,
                against_type: "company",
                against_id: id,
                street1: ident.street.clone(),
                street2: self
                    .rng
                    .random_bool(0.2)
                    .then(|| format!("Level {}", self.rng.random_range(1..40))),
                city: city.to_string(),
                zipcode: zip.to_string(),
                state: state_id,
                country: Some(country_id(ident.country)),
                date_modified,
            }
        });
        let company = AcSeedCompany {
            id,
            name,
            website,
            phone: (!self.rng.random_bool(0.15)).then(|| ident.phone.clone()),
            fax: self.rng.random_bool(0.1).then(|| self.phone(ident.country)),
            comments: self
                .rng
                .random_bool(0.1)
                .then(|| format!("Met at the {} trade fair.", c.cities[ident.city].0)),
            custom_id: self.rng.random_bool(0.1).then(|| format!("C-{:05}", id)),
            status: self.ac_status_for(ident.lifecycle),
            postal_address: address.as_ref().map(|a| a.id),
            date_created,
            date_modified,
        };
        (company, address)
    }

    fn hs_contact(
        &mut self,
        id: u64,
        person: &Person,
        email: &str,
        company: Option<&Identity>,
    ) -> HsSeedRecord {
        let c = &COUNTRIES[person.country];
        let mut p = BTreeMap::new();
        p.insert("email".to_string(), email.to_string());
        p.insert("firstname".to_string(), person.first.clone());
        if !self.rng.random_bool(0.02) {
            p.insert("lastname".to_string(), person.last.clone());
        }
        if !self.rng.random_bool(0.3) {
            p.insert("phone".to_string(), person.phone.clone());
        }
        if self.rng.random_bool(0.4) {
            p.insert("mobilephone".to_string(), person.mobile.clone());
        }
        if !self.rng.random_bool(0.25) {
            p.insert("jobtitle".to_string(), person.job.to_string());
        }
        if !self.rng.random_bool(0.1) {
            p.insert("lifecyclestage".to_string(), person.lifecycle.to_string());
        }
        if self.rng.random_bool(0.5) {
            p.insert(
                "hs_lead_status".to_string(),
                self.pick(LEAD_STATUS).to_string(),
            );
        }
        if let Some(ident) = company {
            p.insert("company".to_string(), ident.base.clone());
            if let Some(d) = &ident.domain {
                p.insert("website".to_string(), format!("https://www.{d}"));
            }
        }
        let (city, state, _, zip) = *self.pick(c.cities);
        if self.rng.random_bool(0.6) {
            p.insert("city".to_string(), city.to_string());
            p.insert("state".to_string(), state.to_string());
            p.insert("zip".to_string(), zip.to_string());
            p.insert("country".to_string(), c.title.to_string());
        }
        if self.rng.random_bool(0.02) {
            p.insert(
                "hs_additional_emails".to_string(),
                format!("{}.alt{}@example.net", person.email_local, id % 1000),
            );
        }
        let created_ms = person.created_s * 1000 + self.rng.random_range(0..1000);
        let updated_ms = created_ms + self.rng.random_range(0..90 * 24 * 3600 * 1000i64);
        HsSeedRecord {
            id,
            props: p,
            created_ms,
            updated_ms,
        }
    }

    fn ac_affiliation(
        &mut self,
        id: u64,
        company: u64,
        contact: u64,
        person: &Person,
        email: &str,
    ) -> AcSeedAffiliation {
        AcSeedAffiliation {
            id,
            company,
            contact,
            email: Some(email.to_string()),
            phone: (!self.rng.random_bool(0.3)).then(|| person.phone.clone()),
            mobile: (!self.rng.random_bool(0.6)).then(|| person.mobile.clone()),
            fax: None,
            position: (!self.rng.random_bool(0.25)).then(|| person.job.to_string()),
            date_modified: person.created_s + self.rng.random_range(0..120 * 24 * 3600),
        }
    }

    fn ac_contact(&mut self, id: u64, person: &Person, affiliation: u64) -> AcSeedContact {
        let status = match person.lifecycle {
            "customer" | "evangelist" | "opportunity" => 1,
            "lead" | "marketingqualifiedlead" | "salesqualifiedlead" => 2,
            _ => 3,
        };
        let status = if self.rng.random_bool(0.2) {
            self.rng.random_range(1..=CONTACT_STATUSES.len() as u64)
        } else {
            status
        };
        let date_created = person.created_s + self.rng.random_range(0..30 * 24 * 3600);
        AcSeedContact {
            id,
            firstname: person.first.clone(),
            surname: person.last.clone(),
            middlename: self
                .rng
                .random_bool(0.1)
                .then(|| self.pick(COUNTRIES[person.country].first).to_string()),
            title: match self.rng.random_range(0..6) {
                0 => Some("Mr".to_string()),
                1 => Some("Ms".to_string()),
                2 => Some("Dr".to_string()),
                _ => None,
            },
            comments: self
                .rng
                .random_bool(0.05)
                .then(|| "Prefers email.".to_string()),
            status,
            default_affiliation: Some(affiliation),
            date_created,
            date_modified: date_created + self.rng.random_range(0..90 * 24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world_different_seed_different_world() {
        let a = generate(7, 50, 200);
        let b = generate(7, 50, 200);
        let c = generate(8, 50, 200);
        let names = |d: &SeedData| {
            d.hubspot
                .companies
                .iter()
                .map(|r| r.props.get("name").cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a), names(&b));
        assert_ne!(names(&a), names(&c));
        assert_eq!(
            a.accelo
                .contacts
                .iter()
                .map(|c| &c.surname)
                .collect::<Vec<_>>(),
            b.accelo
                .contacts
                .iter()
                .map(|c| &c.surname)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn sizes_and_overlaps_are_as_documented() {
        let d = generate(3, 100, 400);
        assert_eq!(d.hubspot.companies.len(), 100);
        assert_eq!(d.accelo.companies.len(), 100);
        assert_eq!(d.hubspot.contacts.len(), 400);
        assert_eq!(d.accelo.contacts.len(), 400);
        // 40 companies share a domain across the two sides.
        let hs_domains: HashSet<String> = d
            .hubspot
            .companies
            .iter()
            .filter_map(|c| c.props.get("domain").cloned())
            .collect();
        let shared = d
            .accelo
            .companies
            .iter()
            .filter_map(|c| c.website.as_ref())
            .filter(|w| {
                let host = w
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_start_matches("www.")
                    .trim_end_matches('/');
                hs_domains.contains(host)
            })
            .count();
        assert!((30..=40).contains(&shared), "shared companies: {shared}");
        // Same people by email (case-insensitively).
        let hs_emails: HashSet<String> = d
            .hubspot
            .contacts
            .iter()
            .filter_map(|c| c.props.get("email").map(|e| e.to_lowercase()))
            .collect();
        let shared_people = d
            .accelo
            .affiliations
            .iter()
            .filter_map(|a| a.email.as_ref())
            .filter(|e| hs_emails.contains(&e.to_lowercase()))
            .count();
        assert!(shared_people >= 150, "shared people: {shared_people}");
        // Some HubSpot contacts have no company; every one with a company has one primary.
        let with_primary: HashSet<u64> = d
            .hubspot
            .associations
            .iter()
            .filter(|a| a.2)
            .map(|a| a.0)
            .collect();
        let without = d.hubspot.contacts.len() - with_primary.len();
        assert!(
            (20..=70).contains(&without),
            "contacts without company: {without}"
        );
        // Emails are unique per side.
        assert_eq!(hs_emails.len(), d.hubspot.contacts.len());
        // Non-ASCII names are present.
        assert!(
            d.hubspot
                .companies
                .iter()
                .any(|c| c.props.get("name").is_some_and(|n| !n.is_ascii()))
        );
        // HubSpot ids exceed 2^32.
        assert!(
            d.hubspot
                .companies
                .iter()
                .all(|c| c.id > u64::from(u32::MAX))
        );
    }

    #[test]
    fn tiny_and_empty_worlds_generate() {
        for (co, ct) in [(0, 0), (0, 10), (1, 1), (3, 0), (1, 50), (2, 3)] {
            let d = generate(1, co, ct);
            assert_eq!(d.hubspot.companies.len(), co);
            assert_eq!(d.accelo.companies.len(), co);
            assert_eq!(d.hubspot.contacts.len(), ct, "({co}, {ct})");
            // Accelo contacts need a company to be affiliated with.
            assert_eq!(d.accelo.contacts.len(), if co == 0 { 0 } else { ct });
        }
    }

    #[test]
    fn folding_makes_ascii_stems() {
        assert_eq!(fold_ascii("Müller & Söhne"), "mullersohne");
        assert_eq!(fold_ascii("Ōkubo Shōji"), "okuboshoji");
        assert_eq!(fold_ascii("Łódź"), "lodz");
        assert_eq!(fold_ascii("Weiß"), "weiss");
    }

    #[test]
    fn hundred_thousand_records_generate() {
        let d = generate(1, 20_000, 80_000);
        assert_eq!(d.hubspot.contacts.len(), 80_000);
        assert_eq!(d.accelo.contacts.len(), 80_000);
    }
}
