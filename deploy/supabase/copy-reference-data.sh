#!/bin/sh
# Organizations, integrations and phone numbers from the old tables into the service's, with the same
# organization and integration ids, so that the org_id and integration_id MightyCall already sends keep
# resolving. Everything goes through `mightycall-ingest` (orgs add, integrations add, phone-numbers
# import), which validates it and stores each number's E.164 form, what the projections match on.
#
#   DATABASE_URL         the service's database, as its owner (run `mightycall-ingest migrate` first)
#   LEGACY_DATABASE_URL  where the old tables are (default: DATABASE_URL, when they were moved aside)
#   LEGACY_SCHEMA        their schema (default supabase_legacy, where move-legacy-tables.sql puts them;
#                        public when they are still in the Supabase database untouched)
#
# Needs psql and mightycall-ingest on PATH. Column names are the seed's (id, name, org_id, phone_number):
# adjust the three SELECTs if the old schema differs. Running it again adds only what is missing. A file
# of phone numbers with one entry that is not a phone number is refused whole, naming the line.
set -eu
: "${DATABASE_URL:?set DATABASE_URL to the owner URL of the service database}"
source_url="${LEGACY_DATABASE_URL:-$DATABASE_URL}"
legacy="${LEGACY_SCHEMA:-supabase_legacy}"
tab=$(printf '\t')
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

query() {
    psql "$1" -v ON_ERROR_STOP=1 --no-psqlrc --no-align --tuples-only --field-separator="$tab" -c "$2"
}

query "$DATABASE_URL" "SELECT id FROM organizations" > "$dir/have-orgs"
query "$DATABASE_URL" "SELECT id FROM integrations" > "$dir/have-integrations"
query "$source_url" "SELECT id, left(coalesce(nullif(btrim(regexp_replace(name, '\s+', ' ', 'g')), ''), id::text), 200)
                     FROM \"$legacy\".organizations ORDER BY id" > "$dir/orgs"
query "$source_url" "SELECT id, org_id FROM \"$legacy\".integrations WHERE org_id IS NOT NULL ORDER BY id" \
    > "$dir/integrations"
query "$source_url" "SELECT DISTINCT org_id FROM \"$legacy\".phone_numbers
                     WHERE org_id IS NOT NULL AND phone_number IS NOT NULL ORDER BY 1" > "$dir/phone-orgs"

while IFS="$tab" read -r id name; do
    grep -qx "$id" "$dir/have-orgs" || mightycall-ingest orgs add --id "$id" --name "$name"
done < "$dir/orgs"
while IFS="$tab" read -r id org; do
    grep -qx "$id" "$dir/have-integrations" || mightycall-ingest integrations add --org "$org" --id "$id"
done < "$dir/integrations"
while read -r org; do
    psql "$source_url" -v ON_ERROR_STOP=1 --no-psqlrc --quiet -c "\\copy (SELECT phone_number FROM \"$legacy\".phone_numbers WHERE org_id = '$org' AND phone_number IS NOT NULL) TO '$dir/$org.csv' WITH (FORMAT csv, HEADER)"
    printf 'phone numbers of %s: ' "$org"
    mightycall-ingest phone-numbers import "$dir/$org.csv" --org "$org"
done < "$dir/phone-orgs"
