"""The face: the ARKit head (mesh, read by gltf; materials), headless rendering and videos
(render), curve files in and out (export) and the animated GLB (glb)."""
