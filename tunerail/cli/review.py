"""`tunerail review ...`: human review of evaluation outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from tunerail.cli._common import app, console, guarded, load_config_or_default

review_app = typer.Typer(help="Human review of evaluation outputs.", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("import")
@guarded
def review_import(
    path: Path = typer.Argument(..., help="review.csv/.jsonl filled in by raters."),
    key: Optional[Path] = typer.Option(None, "--key", help="Answer key (default: review.key.csv beside PATH)."),
) -> None:
    """Read ratings back: mean rating per model (answers were blinded as A/B)."""
    import json

    from tunerail.review import import_ratings

    summary = import_ratings(path, key)
    typer.echo(json.dumps(summary, indent=2))
    console.print(f"{summary['rated']} of {summary['rows']} rows rated")


@review_app.command("serve")
@guarded
def review_serve(
    run_dir: Path = typer.Argument(..., help="Eval output folder (or `tunerail run` folder) with review_items.jsonl."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (review.rubric, overlap, seed)."),
    port: int = typer.Option(8000, "--port", help="Port on 127.0.0.1 (0 = any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; loopback unless you mean to expose it."),
    annotators: Optional[str] = typer.Option(None, "--annotators", help="Comma-separated names (first start only; default: reviewer)."),
    pairs: Optional[str] = typer.Option(None, "--pairs", help="Systems to compare, first:second[,..] (default base:tuned)."),
    new_links: bool = typer.Option(False, "--new-links", help="Issue fresh link tokens (old links stop working; votes stay)."),
) -> None:
    """Blind A/B review in the browser: one link per annotator, votes saved to the run folder."""
    from tunerail.review.app import run_server
    from tunerail.review.session import open_session

    cfg = load_config_or_default(config)
    names = [a.strip() for a in annotators.split(",")] if annotators else None
    session = open_session(run_dir, config=cfg, annotators=names, pairs=pairs, new_links=new_links)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/] binding {escape(host)}: anyone who can reach it and has a link can vote")
    if port == 0:  # pick the free port now, so the printed links are the real ones
        import socket

        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    base = f"http://{host}:{port}"
    for name, link in session.links(base).items():
        console.print(
            f"{escape(name):>12}: {escape(link)}" + ("  (results; names the systems)" if name == "@admin" else ""),
            highlight=False,
            soft_wrap=True,
        )  # a wrapped link cannot be copied
    console.print(f"votes: {escape(str(session.store.path))}; stop with Ctrl-C, start again to resume")
    run_server(session, host=host, port=port)


@review_app.command("results")
@guarded
def review_results_cmd(
    run_dir: Path = typer.Argument(..., help="The folder given to `tunerail review serve`."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="tunerail.yaml (review.rubric, criteria.human)."),
    no_report: bool = typer.Option(False, "--no-report", help="Do not fold the results into report.json/html."),
) -> None:
    """Win rates with Wilson CIs, rubric means, agreement (Krippendorff's alpha); updates the verdict."""
    import json

    from tunerail.review.session import review_results

    cfg = load_config_or_default(config)
    out = review_results(run_dir, config=cfg, update_report=not no_report)
    h = out["results"]
    typer.echo(json.dumps(h, indent=2, ensure_ascii=False, default=str))
    console.print(f"{h['items_reviewed']} of {h['units']} items reviewed, {h['votes']} votes, {h['skipped']} skipped")
    for p in h["pairs"]:
        for s in (p["first"], p["second"]):
            w = p["win_rate"][s]
            if w["value"] is not None:
                console.print(
                    f"{escape(s):>14} wins {100 * w['value']:.1f} % [{100 * w['low']:.1f}, {100 * w['high']:.1f}] "
                    f"of {w['n']} decided ({p['ties']} ties)",
                    highlight=False,
                )
    for q, a in h["agreement"].items():
        alpha = f"alpha {a['alpha']:.3f}" if a["alpha"] is not None else f"alpha undefined ({a['undefined']})"
        pct = f"{100 * a['percent']:.0f} %" if a["percent"] is not None else "-"
        console.print(f"{escape(q):>14}: {alpha}, raw agreement {pct} on {a['units']} items", highlight=False)
    for f in out["findings"]:
        console.print(f"{f.code} {escape(f.message)}", highlight=False)
    if out["verdict"]:
        console.print(f"verdict: {out['verdict']} (report updated: {escape(str(Path(out['path']).parent.parent))})")
        if out["verdict"] != "READY":
            raise typer.Exit(1)
