#!/usr/bin/env bash
# The web console in a real browser: Debian's chromium, headless, driven by
# Playwright for Python (tests/e2e/ui.py) against the release binary with
# users made by `wharf user add`, with an axe-core (npm) accessibility scan.
# Screenshots of the main pages, light and dark, are saved under
# target/ui-screenshots/.
source "$(dirname "$0")/lib.sh"

ensure_packages chromium:chromium curl:curl
ensure_playwright
ensure_axe
chromium=$(command -v chromium) || skip_or_fail "chromium is not on PATH after installing it"
bin="${WHARF_BIN:-target/release/wharf}"
conf="$E2E_TMP/ui.toml"
cat >"$conf" <<'TOML'
[[auth.rules]]
who = ["alice"]
repositories = ["*"]
actions = ["*"]
catalog = true

[[auth.rules]]
who = ["bob"]
repositories = ["team/*"]
actions = ["pull"]
TOML
prepare_data ui
echo "alice-password" | "$bin" user add alice --config "$conf" --data-dir "$WHARF_DATA" >/dev/null
echo "bob-password" | "$bin" user add bob --config "$conf" --data-dir "$WHARF_DATA" >/dev/null
start_wharf ui --config "$conf"

out="target/ui-screenshots"
rm -rf "$out"
if ! "$PLAYWRIGHT_PYTHON" "$(dirname "$0")/ui.py" --base "http://127.0.0.1:$WHARF_PORT" \
    --out "$out" --chromium "$chromium" --axe "$AXE_JS"; then
    tail -20 "$E2E_TMP/ui.log" >&2
    log "FAIL: the console in chromium"
    exit 1
fi
log "console ok in $("$chromium" --version 2>/dev/null | head -1); screenshots in $out"
