//! `tandem demo`: the first command a newcomer runs. Until the apply work lands it describes the
//! walk-through it will perform.

/// Arguments of `tandem demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints what the demo will do.
pub fn run(_args: Args) -> super::Exit {
    println!(
        "tandem demo will start the HubSpot and Accelo sandboxes on free loopback ports with seeded \
         data, show the pull plan, pull, push, push one company, and print where the sync log and \
         the store are. It is not built yet; see README.md for what works today."
    );
    super::Exit::Ok
}
