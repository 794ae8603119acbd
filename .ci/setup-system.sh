#!/usr/bin/env bash
# .ci/setup-system.sh -- install the system packages the test suite needs.
#
# Run as root on a Debian 12 (bookworm) machine of the project's kind (a
# PostgreSQL 15 cluster "15/main" on 127.0.0.1:5432, trust auth). Idempotent:
# when everything is already in place it does no apt-get update/install and
# only re-runs the quick checks (a few seconds). Installs:
#   * postgresql-15-pgsphere  (PostgreSQL extension pg_sphere)
#   * stilts                  (pulls in default-jre-headless)
#   * chromium                (/usr/bin/chromium, used headless)
#
# ---------------------------------------------------------------------------
# pgsphere on PostgreSQL 15.20+: what was found and what this script does
# ---------------------------------------------------------------------------
# Found on the reference machine (psql 15.20 (Debian 15.20-0+deb12u1); server
# "PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu";
# postgresql-15-pgsphere 1.1.1+2021-11-10-2+b1, extension version 1.2.0):
#
#   CREATE EXTENSION pg_sphere;
#   ERROR:  42P13: commutator operator @> is already the commutator of operator <@
#   LOCATION:  UpdateOperatorLinks, pg_operator.c:848
#
# Running /usr/share/postgresql/15/extension/pg_sphere--1.2.0.sql statement by
# statement pins it to the "minimal set of backwards-compatible operators for
# GAVO DaCHS" near the end of the file (lines ~9322-9340):
#
#   CREATE OPERATOR @ (LEFTARG = bigint, RIGHTARG = smoc,
#       PROCEDURE = healpix_subset_smoc, COMMUTATOR = '@>', NEGATOR = '!<@', ...);
#   CREATE OPERATOR @ (LEFTARG = spoint, RIGHTARG = smoc,
#       PROCEDURE = spoint_subset_smoc,  COMMUTATOR = '@>', NEGATOR = '!<@', ...);
#
# The script has already created @>(smoc,bigint) / @>(smoc,spoint) whose
# commutator is <@(bigint,smoc) / <@(spoint,smoc). Declaring @> as the
# commutator of a *second* operator (@) is now rejected by the server (this
# check, added in PostgreSQL 17, is present in the 15.20 server used here;
# older 15.x accepted it). The same two statements are in the old upgrade
# script pg_sphere--1.1.5beta2gavo--1.1.5beta4gavo.sql. Upstream pgsphere
# removed exactly these two operators (postgrespro/pgsphere issue #85,
# PR #92: "Drop obsolete compatibility @({bigint,spoint}, smoc) operators");
# nothing else in the extension references them (no COMMENT, no operator
# class, no other script); the supported spellings are <@ / @>.
#
# What this script does, and why that is robust either way:
#   1. It never decides from version numbers. After installing the package it
#      *probes*: CREATE DATABASE <scratch> TEMPLATE template0; CREATE EXTENSION
#      pg_sphere; against the server that will run the tests.
#   2. Probe succeeds (older server, fixed package, or already patched) ->
#      nothing is changed.
#   3. Probe fails with "... is already the commutator of operator ..." ->
#      every installed pg_sphere--*.sql that still contains those two
#      CREATE OPERATOR @ (bigint|spoint, smoc) statements is copied to
#      <file>.orig (cp -p; PostgreSQL ignores names not ending in .sql) and
#      rewritten without them (each replaced by a one-line SQL comment). The
#      match is on the statement text (LEFTARG bigint|spoint, RIGHTARG smoc),
#      not on line numbers, so it survives a re-built package. Then the probe
#      is repeated and must succeed.
#   4. Any other failure aborts the script with the server's message.
#   5. Every run verifies the result in the scratch database: spoint @
#      scircle, <@ with an smoc, and a GiST-indexed spoly table whose indexed
#      answer (EXPLAIN must show the index) equals the sequential-scan answer.
#      The scratch database is dropped on exit (trap).
#   If dpkg later reinstalls/upgrades postgresql-15-pgsphere, the patched file
#   is overwritten; the next run's probe notices and patches again.
#
# PostgreSQL server safety: the installs only add packages (apt-get install
# never removes postgresql-15 here; pgsphere just Depends: postgresql-15). In
# case apt upgrades postgresql-15 anyway (invoke-rc.d is usually blocked by
# policy-rc.d in containers, so the old postmaster would keep running deleted
# binaries), the script compares the running server_version with the installed
# /usr/lib/postgresql/15/bin/postgres and restarts the cluster on mismatch; at
# start and end it runs pg_isready and, if needed,
#   pg_ctlcluster --skip-systemctl-redirect 15 main start
# The probe therefore always runs against the binaries the tests will use.
#
# Environment overrides: PGHOST (127.0.0.1), PGPORT (5432), PG_ADMIN_USER
# (postgres), PG_CLUSTER (main). See docs/pgsphere.md for the operator note.
# ---------------------------------------------------------------------------
set -euo pipefail

PG_MAJOR=15
PG_CLUSTER=${PG_CLUSTER:-main}
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PG_ADMIN_USER=${PG_ADMIN_USER:-postgres}
EXT_DIR=/usr/share/postgresql/${PG_MAJOR}/extension
PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin/postgres
PACKAGES=("postgresql-${PG_MAJOR}-pgsphere" stilts chromium)
PROBE_DB="ci_pgsphere_probe_$$"
# The two obsolete DaCHS compatibility operators (see header). Multi-line,
# case-insensitive; [^;]* stays inside one CREATE OPERATOR statement.
export PGSPHERE_BAD_OPS_RE='^CREATE\s+OPERATOR\s+@\s*\(\s*LEFTARG\s*=\s*(bigint|spoint)\s*,\s*RIGHTARG\s*=\s*smoc\s*,[^;]*\)\s*;[ \t]*\n'

export DEBIAN_FRONTEND=noninteractive
WORKDIR=$(mktemp -d /tmp/setup-system.XXXXXX)

log() { printf '[setup-system] %s\n' "$*"; }
die() { printf '[setup-system] ERROR: %s\n' "$*" >&2; exit 1; }

cleanup() {
    if command -v psql >/dev/null 2>&1 && pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; then
        psql -X -q -h "$PGHOST" -p "$PGPORT" -U "$PG_ADMIN_USER" -d postgres \
            -c "DROP DATABASE IF EXISTS ${PROBE_DB}" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORKDIR"
}
trap cleanup EXIT

# run_logged LABEL CMD... : run quietly, show the log tail if it fails.
run_logged() {
    local label=$1; shift
    local logf="$WORKDIR/${label//[^a-zA-Z0-9]/_}.log"
    if ! "$@" >"$logf" 2>&1; then
        tail -n 40 "$logf" >&2
        return 1
    fi
}

retry() {  # retry N CMD... (apt against a registry can flake)
    local n=$1 i; shift
    for ((i = 1; i <= n; i++)); do
        "$@" && return 0
        ((i < n)) && { log "  attempt $i failed, retrying in $((i * 5))s"; sleep $((i * 5)); }
    done
    return 1
}

pkg_installed() { dpkg -s "$1" 2>/dev/null | grep -qx 'Status: install ok installed'; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

psql_admin() { PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PG_ADMIN_USER" "$@"; }

ensure_pg_running() {
    command -v pg_isready >/dev/null 2>&1 || die "pg_isready not found (postgresql-client-${PG_MAJOR} missing?)"
    pg_isready -q -h "$PGHOST" -p "$PGPORT" && return 0
    log "PostgreSQL on ${PGHOST}:${PGPORT} not ready; starting cluster ${PG_MAJOR}/${PG_CLUSTER}"
    pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$PG_CLUSTER" start || true
    local i
    for ((i = 0; i < 30; i++)); do
        pg_isready -q -h "$PGHOST" -p "$PGPORT" && { log "PostgreSQL is up"; return 0; }
        sleep 1
    done
    die "PostgreSQL did not come up on ${PGHOST}:${PGPORT} (see /var/log/postgresql/)"
}

# Restart the cluster if the running postmaster is older/newer than the
# installed binaries (e.g. apt upgraded postgresql-15 under it).
ensure_pg_current() {
    [[ -x $PG_BIN ]] || return 0
    local running installed
    running=$(psql_admin -d postgres -At -c 'SHOW server_version') || die "cannot query server_version"
    installed=$("$PG_BIN" --version | sed -e 's/^postgres (PostgreSQL) //')
    [[ $running == "$PG_MAJOR".* ]] || return 0   # not our major version: leave it alone
    if [[ $running != "$installed" ]]; then
        log "running server is '$running' but installed binaries are '$installed': restarting ${PG_MAJOR}/${PG_CLUSTER}"
        pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$PG_CLUSTER" restart ||
            log "  restart failed; trying start"
        ensure_pg_running
    fi
}

# ---------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "must run as root"
log "start ($(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"'))"

# 1. packages -----------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
for c in stilts chromium java; do
    command -v "$c" >/dev/null 2>&1 && continue
    case $c in java) p=default-jre-headless ;; *) p=$c ;; esac
    [[ " ${missing[*]} " == *" $p "* ]] || missing+=("$p")
done

if ((${#missing[@]})); then
    pg_before=$(pkg_version postgresql-${PG_MAJOR})
    log "apt-get update"
    retry 3 run_logged apt-update apt-get -q update || die "apt-get update failed"
    log "apt-get install ${missing[*]}"
    retry 3 run_logged apt-install apt-get -q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 \
        install --no-install-recommends "${missing[@]}" || die "apt-get install failed"
    pg_after=$(pkg_version postgresql-${PG_MAJOR})
    [[ $pg_before == "$pg_after" ]] ||
        log "NOTE: apt changed postgresql-${PG_MAJOR}: '${pg_before:-none}' -> '$pg_after'"
else
    log "packages already installed: ${PACKAGES[*]} (skipping apt)"
fi
for p in "${PACKAGES[@]}"; do pkg_installed "$p" || die "package $p is not installed"; done

# 2. PostgreSQL up, on current binaries ------------------------------------------
ensure_pg_running
ensure_pg_current

# 3. pg_sphere: probe, patch if needed, verify --------------------------------------
# try_create_extension: fresh scratch DB + CREATE EXTENSION; output in $probe_out
try_create_extension() {
    psql_admin -d postgres -c "DROP DATABASE IF EXISTS ${PROBE_DB}" \
        -c "CREATE DATABASE ${PROBE_DB} TEMPLATE template0" >/dev/null
    probe_out=$(psql_admin -d "$PROBE_DB" -c 'CREATE EXTENSION pg_sphere' 2>&1)
}

patch_pgsphere_scripts() {
    local f n=0
    for f in "$EXT_DIR"/pg_sphere--*.sql; do
        [[ -f $f ]] || continue
        perl -0777 -ne 'exit(/$ENV{PGSPHERE_BAD_OPS_RE}/mi ? 0 : 1)' "$f" || continue
        cp -p "$f" "$f.orig"   # the file still has the statements => it is the packaged one
        PGSPHERE_ORIG="$f.orig" perl -0777 -pe 's/$ENV{PGSPHERE_BAD_OPS_RE}/-- CREATE OPERATOR \@ ($1, smoc) removed by .ci\/setup-system.sh: obsolete GAVO DaCHS compat operator, rejected by PostgreSQL >= 15.20 (original: $ENV{PGSPHERE_ORIG})\n/mgi' \
            "$f.orig" >"$f"
        ! perl -0777 -ne 'exit(/$ENV{PGSPHERE_BAD_OPS_RE}/mi ? 0 : 1)' "$f" || die "patching $f failed"
        log "  patched $(basename "$f") (original kept as $(basename "$f").orig)"
        n=$((n + 1))
    done
    ((n > 0)) || die "no installed pg_sphere--*.sql contains the known obsolete @ (bigint|spoint, smoc) operators; cannot fix: $probe_out"
}

log "pgsphere: probing CREATE EXTENSION pg_sphere in scratch database ${PROBE_DB}"
probe_out=
if try_create_extension; then
    if grep -lq 'removed by .ci/setup-system.sh' "$EXT_DIR"/pg_sphere--*.sql 2>/dev/null; then
        log "pgsphere: CREATE EXTENSION works (extension script already patched by an earlier run)"
    else
        log "pgsphere: CREATE EXTENSION works unpatched; nothing to fix"
    fi
elif grep -q 'is already the commutator of operator' <<<"$probe_out"; then
    log "pgsphere: CREATE EXTENSION failed: $(grep -m1 ERROR <<<"$probe_out")"
    log "pgsphere: removing the two obsolete smoc '@' operators from the extension scripts"
    patch_pgsphere_scripts
    try_create_extension || die "CREATE EXTENSION pg_sphere still fails after patching: $probe_out"
    log "pgsphere: CREATE EXTENSION works after patching"
else
    die "CREATE EXTENSION pg_sphere failed with an unexpected error: $probe_out"
fi

log "pgsphere: verifying spatial queries and a GiST index"
verify_out=$(psql_admin -d "$PROBE_DB" -At <<'SQL'
SELECT 'extversion=' || extversion FROM pg_extension WHERE extname = 'pg_sphere';
SELECT 'in_circle=' || (spoint(0, 0) @ scircle(spoint(0, 0), 0.1));
SELECT 'in_circle_new=' || (spoint(0, 0) <@ scircle(spoint(0, 0), 0.1));
SELECT 'out_circle=' || (spoint(1, 1) @ scircle(spoint(0, 0), 0.1));
SELECT 'in_smoc=' || (spoint(0, 0) <@ smoc(6, scircle(spoint(0, 0), 0.1)));
CREATE TABLE probe_poly (id int PRIMARY KEY, p spoly NOT NULL);
INSERT INTO probe_poly
SELECT i, format('{(%sd,%sd),(%sd,%sd),(%sd,%sd)}', x, y, x + 2, y, x + 1, y + 2)::spoly
FROM generate_series(0, 4999) AS i,
     LATERAL (SELECT (i % 100) * 3.6 AS x, (i / 100) * 3 - 75 AS y) AS s;
CREATE INDEX probe_poly_gist ON probe_poly USING gist (p);
ANALYZE probe_poly;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM probe_poly WHERE p @> spoint(radians(1), radians(-74.5));
SELECT 'idx=' || coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM probe_poly WHERE p @> spoint(radians(1), radians(-74.5));
RESET enable_seqscan;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SELECT 'seq=' || coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM probe_poly WHERE p @> spoint(radians(1), radians(-74.5));
SQL
) || die "pgsphere verification queries failed: $verify_out"
val() { sed -n "s/^$1=//p" <<<"$verify_out"; }
[[ $(val in_circle) == true && $(val in_circle_new) == true && $(val out_circle) == false && $(val in_smoc) == true ]] ||
    die "pgsphere: unexpected results: $verify_out"
grep -q 'probe_poly_gist' <<<"$verify_out" || die "pgsphere: GiST index not used: $verify_out"
[[ -n $(val idx) && $(val idx) == "$(val seq)" ]] ||
    die "pgsphere: GiST result '$(val idx)' != seqscan result '$(val seq)'"
pgsphere_extversion=$(val extversion)
log "pgsphere: OK (extension $pgsphere_extversion; GiST spoly @> spoint -> rows {$(val idx)}, same as seqscan)"
psql_admin -d postgres -c "DROP DATABASE IF EXISTS ${PROBE_DB}" >/dev/null

# 4. stilts ---------------------------------------------------------------------
stilts_out=$(stilts -version 2>&1) || die "stilts -version failed: $stilts_out"
stilts_ver=$(grep -m1 -i 'stilts version' <<<"$stilts_out" || head -n1 <<<"$stilts_out")
stilts_ver=${stilts_ver#"${stilts_ver%%[![:space:]]*}"}
log "stilts: OK (${stilts_ver})"

# 5. chromium -------------------------------------------------------------------
# Throwaway profile and XDG dirs, so the check leaves no state behind (chromium
# otherwise creates ~/.config/chromium/Crash Reports and ~/.cache/dconf). The
# dbus "Failed to connect to the bus" lines and a "[: ...: unexpected operator"
# line from the /usr/bin/chromium wrapper on stderr are harmless.
chrome_profile="$WORKDIR/chromium-profile"
dom=$(XDG_CONFIG_HOME="$WORKDIR/xdg-config" XDG_CACHE_HOME="$WORKDIR/xdg-cache" timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$chrome_profile" \
    --dump-dom about:blank 2>"$WORKDIR/chromium.err") || {
    tail -n 20 "$WORKDIR/chromium.err" >&2
    die "chromium --headless --dump-dom about:blank failed"
}
[[ $dom == *"<body>"* ]] || die "chromium --dump-dom returned unexpected output: $dom"
log "chromium: OK (headless --dump-dom about:blank -> $(tr -d '\n' <<<"$dom"))"

# 6. final state ------------------------------------------------------------------
ensure_pg_running
log "final state:"
log "  server:     $(psql_admin -d postgres -At -c 'SELECT version()')"
log "  pgsphere:   postgresql-${PG_MAJOR}-pgsphere $(pkg_version postgresql-${PG_MAJOR}-pgsphere), extension $pgsphere_extversion"
log "  stilts:     stilts $(pkg_version stilts) (${stilts_ver}); java: $(java -version 2>&1 | head -n1)"
log "  chromium:   $(chromium --version 2>/dev/null | head -n1) (package $(pkg_version chromium))"
log "done in ${SECONDS}s"
