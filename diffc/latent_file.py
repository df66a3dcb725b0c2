"""The latent file `diffc encode` writes and training reads: an uncompressed .npz with its own metadata.

Arrays: `latents` [N, C or 2C, h, w] float32 raw VAE latents (posterior "dist": mean then std, EDM2's dataset_tool
layout; "mean"; or one fixed "sample"), `latents_flipped` (same, of the horizontally flipped crops, with --flip),
`labels` [N] int64 (class sub-folders), `files` [N] the source images, and `diffc_latents`: JSON metadata
(the convention with its scale/bias, the VAE's identity, resolution, posterior kind, class names).
The file is written in one stream, shard by shard (bounded memory), through diffc.files.atomic_write.
"""
from __future__ import annotations

import json
import zipfile

import attrs
import numpy as np

from diffc.autoencoder import Convention
from diffc.errors import UserError
from diffc.files import atomic_write

FORMAT = "diffc-latents-1"
META_KEY = "diffc_latents"
POSTERIORS = ("dist", "mean", "sample")


@attrs.define
class LatentFile:
    latents: np.ndarray                  # [N, C', h, w]
    flipped: np.ndarray | None
    labels: np.ndarray | None
    meta: dict | None                    # None: a plain array file without diffc metadata
    convention: Convention | None

    @property
    def posterior(self) -> str:
        return (self.meta or {}).get("posterior", "mean")

    @property
    def channels(self) -> int:
        """Channels of one latent (half the stored ones when mean and std are stored)."""
        return self.latents.shape[1] // (2 if self.posterior == "dist" else 1)


def write_latent_file(path, arrays: dict, meta: dict) -> None:
    """Atomically write `arrays` (name -> ndarray, or name -> (dtype, shape, iterable of ndarray chunks)) + meta."""
    def write(handle):
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, value in {**arrays, META_KEY: np.array(json.dumps({"format": FORMAT, **meta}))}.items():
                dtype, shape, chunks = (value.dtype, value.shape, [value]) if isinstance(value, np.ndarray) else value
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                          "shape": tuple(shape)}
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array_header_2_0(member, header)
                    for chunk in chunks:
                        member.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())
    atomic_write(path, write)


def read_latent_file(path, where: str | None = None) -> LatentFile:
    """A latent file (diffc's, or a plain .npz/.npy of latents under 'latents', 'images', 'x' or 'arr_0')."""
    where = where or str(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        arrays = {"latents": loaded} if isinstance(loaded, np.ndarray) else {k: loaded[k] for k in loaded.files}
    except Exception as exc:  # numpy raises ValueError/OSError/zipfile errors for damaged or pickled files
        raise UserError(f"cannot read latent file ({type(exc).__name__}: {exc})", file=where) from None
    meta = None
    if META_KEY in arrays:
        try:
            meta = json.loads(str(arrays[META_KEY]))
        except ValueError:
            meta = None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise UserError(f"malformed '{META_KEY}' metadata (format {FORMAT} expected)", file=where,
                            help="re-encode the images with `diffc encode`")
    key = next((k for k in ("latents", "images", "x", "arr_0") if k in arrays), None)
    if key is None:
        raise UserError(f"no 'latents' array (nor 'images', 'x', 'arr_0'); found {sorted(arrays)}", file=where)
    latents = arrays[key]
    if latents.ndim != 4 or not np.issubdtype(latents.dtype, np.floating):
        raise UserError(f"'{key}' must be floats [N, C, h, w], got {latents.dtype} {latents.shape}", file=where)
    flipped = arrays.get("latents_flipped")
    if flipped is not None and flipped.shape != latents.shape:
        raise UserError(f"'latents_flipped' has shape {flipped.shape}, 'latents' {latents.shape}", file=where)
    labels = next((arrays[k] for k in ("labels", "y") if k in arrays), None)
    if labels is not None and (labels.shape != (len(latents),) or not np.issubdtype(labels.dtype, np.integer)):
        raise UserError(f"labels must be integers of shape ({len(latents)},), got {labels.dtype} {labels.shape}",
                        file=where)
    convention = None
    if meta is not None:
        convention = Convention.from_dict(meta.get("convention"), where)
        if meta.get("posterior") not in POSTERIORS:
            raise UserError(f"unknown posterior kind {meta.get('posterior')!r} (expected {', '.join(POSTERIORS)})",
                            file=where)
    result = LatentFile(latents, flipped, labels, meta, convention)
    if convention is not None and len(convention.scale) != result.channels:
        raise UserError(f"the convention has {len(convention.scale)} channels, the latents {result.channels}",
                        file=where)
    return result


def raw_statistics(chunks) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the latents training draws from chunks of stored latents (posterior "dist":
    the mixture of N(mean, std^2) per position; otherwise the stored values). Accumulated in float64."""
    total = first = second = 0
    for chunk, dist in chunks:
        chunk = chunk.astype(np.float64)
        mean, std = np.split(chunk, 2, axis=1) if dist else (chunk, np.zeros_like(chunk))
        total += mean.shape[0] * mean.shape[2] * mean.shape[3]
        first = first + mean.sum(axis=(0, 2, 3))
        second = second + (mean ** 2 + std ** 2).sum(axis=(0, 2, 3))
    if not total:
        raise UserError("no latents to measure statistics from")
    mu = first / total
    return mu.tolist(), np.sqrt(np.maximum(second / total - mu ** 2, 0)).tolist()

