#!/usr/bin/env bash
# Rebuilds demo/static/vendor/three-viewer.min.js from the npm registry and checks it against the
# sha256 recorded in demo/static/vendor/VENDOR.md (`--write` records a new build instead).
#
# The file is three.js (core renderer + OrbitControls) bundled, tree-shaken and minified by
# esbuild into one ES module that exports only what demo/static/*.js import. three 0.187
# ships no minified build, hence the bundling. Needs node + npm; nothing is installed outside a
# temporary folder. The app itself never needs node: the built file is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
THREE_VERSION=0.187.0
ESBUILD_VERSION=0.28.2
out=demo/static/vendor
record=$out/VENDOR.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/package.json" <<JSON
{"name": "dt-vendor", "private": true,
 "dependencies": {"three": "$THREE_VERSION", "esbuild": "$ESBUILD_VERSION"}}
JSON
cat > "$tmp/entry.js" <<'JS'
export {
  AmbientLight, Bone, BufferAttribute, BufferGeometry, Color, DirectionalLight, DoubleSide, HemisphereLight,
  Mesh, MeshStandardMaterial, PerspectiveCamera, Scene, Skeleton, SkinnedMesh, SRGBColorSpace, Vector3,
  WebGLRenderer,
} from 'three';
export { OrbitControls } from 'three/addons/controls/OrbitControls.js';
JS
(cd "$tmp" && npm install --silent --no-audit --no-fund --ignore-scripts=false >/dev/null)
(cd "$tmp" && ./node_modules/.bin/esbuild entry.js --bundle --format=esm --minify --legal-comments=inline \
  --target=es2020 --outfile=three-viewer.min.js --log-level=warning)
built=$tmp/three-viewer.min.js
sha=$(sha256sum "$built" | cut -d' ' -f1)
tarball_sha=$(cd "$tmp" && npm pack --silent "three@$THREE_VERSION" >/dev/null && sha256sum "three-$THREE_VERSION.tgz" | cut -d' ' -f1)

if [[ "${1:-}" == "--write" ]]; then
  cp "$built" "$out/three-viewer.min.js"
  cp "$tmp/node_modules/three/LICENSE" "$out/LICENSE-three.txt"
  cat > "$record" <<MD
# Vendored front-end files

| file | what | from | licence | sha256 |
|---|---|---|---|---|
| three-viewer.min.js | three.js core renderer + OrbitControls, one minified ES module ($(wc -c < "$built") bytes) | npm \`three@$THREE_VERSION\` (tarball sha256 \`$tarball_sha\`), bundled with npm \`esbuild@$ESBUILD_VERSION\` | MIT (LICENSE-three.txt) | \`$sha\` |

Rebuild and check: \`bash scripts/vendor_three.sh\` (exits non-zero if the rebuilt file differs);
\`bash scripts/vendor_three.sh --write\` records a new build. The exports are listed in that script.
MD
  echo "wrote $out/three-viewer.min.js ($sha)"
else
  recorded=$(grep -o '`[0-9a-f]\{64\}`' "$record" | tail -1 | tr -d '`')
  [[ "$sha" == "$recorded" ]] || { echo "rebuilt $sha differs from the recorded $recorded" >&2; exit 1; }
  cmp -s "$built" "$out/three-viewer.min.js" || { echo "demo/static/vendor/three-viewer.min.js differs from the rebuild" >&2; exit 1; }
  echo "three-viewer.min.js matches three@$THREE_VERSION + esbuild@$ESBUILD_VERSION ($sha)"
fi
