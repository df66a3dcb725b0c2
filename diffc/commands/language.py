"""`diffc check`, `compile`, `blocks`, `import-weights`. check and blocks never import torch."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from diffc.commands.common import error_format_option, format_option, model_option, spec_argument
from diffc.errors import UserError


@click.command()
@spec_argument
@model_option
@click.option("--all", "all_models", is_flag=True, help="Check every model and preset in the spec.")
@error_format_option
def check(spec, model, all_models, error_format):
    """Parse, resolve and check shapes of SPEC without building weights (fast, no torch).

    \b
    Example:  diffc check specs/dit.diffspec --model DiT_XL_2
    """
    from diffc.compiler import compile_program
    from diffc.compiler.program import load_program
    start = time.perf_counter()
    program = load_program(spec)
    names = program.model_names() if all_models else [program.choose_model(model)]
    results = []
    for name in names:
        compiled = compile_program(program, name)
        iface = compiled.interface
        results.append({"model": name, "nodes": compiled.graph.number_of_nodes(),
                        "sample": list(iface.sample_shape), "out_channels": iface.out_channels})
    elapsed = time.perf_counter() - start
    if error_format == "json":
        click.echo(json.dumps({"ok": True, "models": results, "seconds": elapsed}))
        return
    for r in results:
        click.echo(f"ok: {r['model']}: {r['nodes']} nodes, sample {r['sample']} -> {r['out_channels']} channels")
    click.echo(f"checked {len(results)} model(s) in {elapsed * 1000:.0f} ms")


@click.command("compile")
@spec_argument
@model_option
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="Write an initialised model (.pt, or .safetensors: see --format).")
@click.option("--expand", is_flag=True, help="One table row per node instead of folding repeats.")
@click.option("--seed", type=int, default=0, show_default=True, help="Initialisation seed for --save.")
@format_option
@error_format_option
def compile_cmd(spec, model, save, expand, seed, file_format, error_format):
    """Compile SPEC and print a summary: node, block, output shape, parameters, MACs.

    The summary is computed on the meta device, so even billion-parameter models allocate nothing.

    \b
    Example:  diffc compile specs/dit.diffspec --model DiT_XL_2
              diffc compile specs/dit.diffspec --model DiT_tiny --save tiny.pt
    """
    import torch

    from diffc.compiler import build_model
    from diffc.compiler.summary import format_table, method_lines, summary_rows
    built = build_model(spec, model, device="meta")
    rows, totals = summary_rows(built.compiled, built.module, fold=not expand)
    click.echo(format_table(rows, totals, built.model_name))
    for line in method_lines(built.compiled, built.module):
        click.echo(line)
    if save:
        from diffc.model_file import format_for, save_model_file
        torch.manual_seed(seed)
        real = build_model(spec, model, device="cpu")
        state = {"format": "diffc-model-1", "model": real.module.state_dict(), "spec_text": real.spec_text,
                 "spec_hash": real.spec_hash, "model_name": real.model_name, "spec_path": str(spec), "seed": seed}
        save_model_file(save, state, format_for(save, file_format))
        click.echo(f"saved initialised {real.model_name} to {save}")


@click.command()
@click.option("--search", "-s", default=None, help="Only blocks whose name or doc contains WORD.")
def blocks(search):
    """List registered blocks and annotations with their signatures and docs.

    \b
    Example:  diffc blocks --search attention
    """
    from diffc.methods import pass_order
    from diffc.registry import REGISTRY
    REGISTRY.load()
    word = (search or "").lower()
    shown = 0
    for name in sorted(REGISTRY.blocks):
        info = REGISTRY.blocks[name]
        if word and word not in name.lower() and word not in info.doc.lower():
            continue
        tags = f"  [{', '.join(sorted(info.tags))}]" if info.tags else ""
        origin = f"  (from {info.origin})" if info.origin != "diffc" else ""
        click.echo(f"{info.signature()}{tags}{origin}\n    {info.doc}")
        shown += 1
    for name in sorted(REGISTRY.annotations):
        info = REGISTRY.annotations[name]
        if word and word not in name.lower() and word not in info.doc.lower():
            continue
        origin = f"  (from {info.origin})" if info.origin != "diffc" else ""
        click.echo(f"{info.signature()}  [annotation on: {', '.join(sorted(info.targets))}]{origin}\n    {info.doc}")
        shown += 1
    methods = [m for m in pass_order() if not word or word in m.name.lower() or word in m.doc.lower()
               or any(word in a for a in m.implements)]
    if methods:
        click.echo("methods, in pass order (diffc.methods):")
    for info in methods:
        origin = f"  (from {info.origin})" if info.origin != "diffc" else ""
        click.echo(f"  {info.name}: implements {', '.join('@' + a for a in info.implements)}{origin}\n    {info.doc}")
        shown += 1
    if not shown:
        raise UserError(f"no block or annotation matches '{search}'", help="run `diffc blocks` for the full list")


@click.command("import-weights")
@spec_argument
@click.argument("weights", type=click.Path(dir_okay=False))
@model_option
@click.option("--out", "-o", type=click.Path(dir_okay=False), required=True,
              help="Where to write the model (.pt, or .safetensors: see --format).")
@click.option("--weights", "which", type=click.Choice(["ema", "model"]), default="ema", show_default=True,
              help="which weights of a training checkpoint {model, ema, opt, args}")
@click.option("--objective", type=click.Choice(["ddpm_eps", "ddpm_v", "edm2", "flow"]), default=None,
              help="what the model predicts (default by the noise input: timestep ddpm_eps, sigma edm2, time flow)")
@click.option("--latent/--pixel", default=None,
              help="a latent (SD-VAE) or pixel model; default: latent when the samples have 4 channels")
@format_option
def import_weights(spec, weights, model, out, which, objective, latent, file_format):
    """Load released weights into the compiled SPEC, key for key, and write a model file `diffc sample` reads.

    \b
    Reads bare state_dicts (DiT-XL-2-256x256.pt), DiT/SiT/LayerSync/DTR training checkpoints (--weights ema|model;
    DTR routing buffers are checked against the spec's @route tables) and EDM2 network-snapshot/phema .pkl
    files. Nothing pickled in them is ever run.
    Examples:
      diffc import-weights specs/dit.diffspec DiT-XL-2-256x256.pt --model DiT_XL_2 -o dit_xl2.pt
      diffc import-weights specs/edm2_img512_xs.diffspec edm2-img512-xs-2147483-0.135.pkl -o xs.pt
    """
    from diffc.checkpoints import MODEL_FORMAT
    from diffc.compiler import build_model
    from diffc.files import check_writable_folder
    from diffc.model_file import format_for, save_model_file
    from diffc.weights import import_weights as import_into, imported_metadata, read_state_dict
    check_writable_folder(Path(out).parent)
    state = read_state_dict(weights, which)          # a bad or hostile file is refused before the model is built
    built = build_model(spec, model, device="cpu")
    import_into(built, state)
    recipe, autoencoder = imported_metadata(built.interface, objective, latent)
    state = {"format": MODEL_FORMAT, "model": built.module.state_dict(), "spec_text": built.spec_text,
             "spec_hash": built.spec_hash, "model_name": built.model_name, "spec_path": str(spec),
             "imported_from": str(weights), "weights": which,
             "recipe": recipe, "autoencoder": autoencoder}
    save_model_file(out, state, format_for(out, file_format))
    click.echo(f"imported {weights} ({which}) into {built.model_name}; wrote {out}")
