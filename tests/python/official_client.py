#!/usr/bin/env python3
"""Drive the HubSpot simulator with HubSpot's official Python client (hubspot-api-client).

Usage: official_client.py <hubspot url> <private-app token>

Creates, reads, updates, batches, searches, pages and associates through the generated client,
so every response must deserialize into the client's own models (required fields, types, the
207 "WithErrors" variants). Exits non-zero with a message on the first failure.
"""

import sys

import hubspot
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicAssociationMultiPost,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.associations.v4 import PublicObjectId as AssocObjectId
from hubspot.crm.companies import (
    SimplePublicObjectInput as CompanyInput,
    SimplePublicObjectInputForCreate as CompanyCreate,
)
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate as ContactCreate,
)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    if len(sys.argv) != 3:
        print("usage: official_client.py <hubspot url> <token>", file=sys.stderr)
        sys.exit(2)
    url, token = sys.argv[1], sys.argv[2]
    client = hubspot.Client.create(access_token=token, host=url)

    # Create and read a company.
    company = client.crm.companies.basic_api.create(
        simple_public_object_input_for_create=CompanyCreate(
            properties={"name": "Pythonic Pty Ltd", "domain": "pythonic.example", "lifecyclestage": "lead"}
        )
    )
    check(company.id.isdigit() and int(company.id) > 2**32, "create company returns a large numeric id")
    got = client.crm.companies.basic_api.get_by_id(company_id=company.id, properties=["name", "domain", "lifecyclestage"])
    check(got.properties["name"] == "Pythonic Pty Ltd", "get company by id")
    check(got.created_at is not None and got.updated_at is not None, "timestamps deserialize")

    # Update (and clear with an empty string).
    updated = client.crm.companies.basic_api.update(
        company_id=company.id,
        simple_public_object_input=CompanyInput(properties={"phone": "+61 2 9999 0000", "domain": ""}),
    )
    check(updated.properties.get("phone") == "+61 2 9999 0000", "update company")
    check(updated.properties.get("domain") in (None, ""), "empty string clears a property")

    # A contact created with a primary association.
    contact = client.crm.contacts.basic_api.create(
        simple_public_object_input_for_create=ContactCreate(
            properties={"email": "py@pythonic.example", "firstname": "Zoë", "lastname": "Ōkubo"},
            associations=[
                {
                    "to": {"id": company.id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}],
                }
            ],
        )
    )
    got = client.crm.contacts.basic_api.get_by_id(
        contact_id=contact.id, properties=["associatedcompanyid", "firstname"], associations=["companies"]
    )
    check(got.properties["associatedcompanyid"] == company.id, "associatedcompanyid follows the primary association")
    check(got.properties["firstname"] == "Zoë", "non-ASCII values round-trip")
    by_email = client.crm.contacts.basic_api.get_by_id(contact_id="py@pythonic.example", id_property="email")
    check(by_email.id == contact.id, "get contact by email idProperty")

    # Duplicate email: 409.
    try:
        client.crm.contacts.basic_api.create(
            simple_public_object_input_for_create=ContactCreate(properties={"email": "PY@pythonic.example"})
        )
        check(False, "duplicate email must be refused")
    except ApiException as e:
        check(e.status == 409, "duplicate email is 409 CONFLICT")

    # Unknown property: 400.
    try:
        client.crm.contacts.basic_api.create(
            simple_public_object_input_for_create=ContactCreate(properties={"email": "x@y.example", "nope": "1"})
        )
        check(False, "unknown property must be refused")
    except ApiException as e:
        check(e.status == 400 and "nope" in e.body, "unknown property is 400 naming it")

    # Batch create, read (with a missing id: 207), update, upsert.
    created = client.crm.contacts.batch_api.create(
        batch_input_simple_public_object_batch_input_for_create=BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(properties={"email": f"batch{i}@pythonic.example"})
                for i in range(5)
            ]
        )
    )
    ids = [r.id for r in created.results]
    check(len(ids) == 5 and created.status == "COMPLETE", "batch create")
    read = client.crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids] + [SimplePublicObjectId(id="1")],
            properties=["email"],
        )
    )
    check(len(read.results) == 5 and read.num_errors == 1, "batch read with a missing id is a 207 with errors")
    upd = client.crm.contacts.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=i, properties={"jobtitle": "Engineer"}) for i in ids]
        )
    )
    check(all(r.properties["jobtitle"] == "Engineer" for r in upd.results), "batch update")
    ups = client.crm.contacts.batch_api.upsert(
        batch_input_simple_public_object_batch_input_upsert=BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(id="batch0@pythonic.example", id_property="email", properties={"lastname": "Zero"}),
                SimplePublicObjectBatchInputUpsert(id="fresh@pythonic.example", id_property="email", properties={"lastname": "New"}),
            ]
        )
    )
    check(len(ups.results) == 2, "batch upsert by email")

    # Search with a filter, a sort and paging.
    req = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="CONTAINS_TOKEN", value="*@pythonic.example")])],
        sorts=[{"propertyName": "createdate", "direction": "ASCENDING"}],
        properties=["email"],
        limit=3,
    )
    page1 = client.crm.contacts.search_api.do_search(public_object_search_request=req)
    check(page1.total == 7, f"search total (got {page1.total})")
    check(page1.paging is not None and page1.paging.next.after == "3", "search paging cursor")
    req.after = page1.paging.next.after
    page2 = client.crm.contacts.search_api.do_search(public_object_search_request=req)
    check(len(page2.results) == 3, "search second page")

    # Paging through every company with the client's own get_all.
    everything = client.crm.companies.get_all()
    check(len(everything) >= 2 and any(c.id == company.id for c in everything), "get_all pages to the end")
    page = client.crm.contacts.basic_api.get_page(limit=2)
    check(len(page.results) == 2 and page.paging.next.after, "get_page with a cursor")

    # v4 associations: default, labelled, list, batch create and read, archive.
    other = client.crm.companies.basic_api.create(
        simple_public_object_input_for_create=CompanyCreate(properties={"name": "Second Co"})
    )
    client.crm.associations.v4.basic_api.create_default(
        from_object_type="contacts", from_object_id=ids[0], to_object_type="companies", to_object_id=other.id
    )
    labelled = client.crm.associations.v4.basic_api.create(
        object_type="contacts",
        object_id=ids[0],
        to_object_type="companies",
        to_object_id=company.id,
        association_spec=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=1)],
    )
    check("Primary" in labelled.labels, "labelled association returns its labels")
    listed = client.crm.associations.v4.basic_api.get_page(object_type="contacts", object_id=ids[0], to_object_type="companies")
    check(len(listed.results) == 2, "list associations")
    primary = client.crm.contacts.basic_api.get_by_id(contact_id=ids[0], properties=["associatedcompanyid"])
    check(primary.properties["associatedcompanyid"] == company.id, "the labelled primary wins")
    client.crm.associations.v4.batch_api.create(
        from_object_type="contacts",
        to_object_type="companies",
        batch_input_public_association_multi_post=BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=AssocObjectId(id=i),
                    to=AssocObjectId(id=other.id),
                    types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=279)],
                )
                for i in ids[1:]
            ]
        ),
    )
    batch_read = client.crm.associations.v4.batch_api.get_page(
        from_object_type="companies",
        to_object_type="contacts",
        batch_input_public_fetch_associations_batch_request=BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=other.id)]
        ),
    )
    check(len(batch_read.results[0].to) == 5, "batch read associations from the company side")
    client.crm.associations.v4.basic_api.archive(
        object_type="contacts", object_id=ids[0], to_object_type="companies", to_object_id=company.id
    )
    after = client.crm.contacts.basic_api.get_by_id(contact_id=ids[0], properties=["associatedcompanyid"])
    check(after.properties.get("associatedcompanyid") in (None, ""), "removing the primary clears associatedcompanyid")

    # Properties.
    props = client.crm.properties.core_api.get_all(object_type="contacts")
    check(any(p.name == "lifecyclestage" for p in props.results), "properties list")

    # Archive.
    client.crm.contacts.batch_api.archive(
        batch_input_simple_public_object_id=BatchInputSimplePublicObjectId(inputs=[SimplePublicObjectId(id=ids[4])])
    )
    client.crm.companies.basic_api.archive(company_id=other.id)
    try:
        client.crm.companies.basic_api.get_by_id(company_id=other.id)
        check(False, "archived company must be gone")
    except Exception as e:  # the companies package has its own ApiException
        check(getattr(e, "status", None) == 404, "archived company is 404")

    print("all official-client checks passed")


if __name__ == "__main__":
    main()
