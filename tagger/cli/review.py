"""``terc-tag review OUTPUT``."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from tagger.cli.common import backend_option, echo_line, fail, model_option, open_bundle, threshold_option
from tagger.errors import EXIT_INTERRUPTED


@click.command("review")
@click.argument("output_dir", metavar="OUTPUT", type=click.Path(path_type=Path, file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port to listen on (default: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback lets other machines reach the page (with the token).")
@click.option("--no-browser", is_flag=True, help="Print the address, do not open a browser.")
@model_option
@backend_option
@threshold_option
def command(output_dir, port, host, no_browser, model_dir, backend, threshold):
    """Check and correct the tags of a tagged OUTPUT in a local web page.

    The page shows the photos most in need of a look first (a tag near its
    threshold, then the rarest tags; each photo says which tag put it there),
    each with its tags, their probabilities against the threshold, a heat
    map per tag on demand, and its most similar photos, to which the same
    correction applies in one keystroke (all frames of a burst at once).
    Every change is written into the photo at once, through the same code as
    `terc-tag correct`, and the photo is marked reviewed: no later `tag` run
    changes its tags. A change that fails is undone on the page and said in
    red; `u` undoes the last change, `b` hands a photo back to the model.
    Search by file name, and accept every listed photo at once (asks first).

    The server listens on 127.0.0.1 and needs the random token in the printed
    address; it answers only to localhost and the address it listens on, and
    stops with Ctrl-C. Thumbnails are kept in OUTPUT/.terc-tag/thumbnails.

    \b
    Keys (? on the page lists them): j/k or arrows next/previous,
          1-9 0 - = toggle a tag, Enter accept as is, u undo, b hand back,
          h heat map, s apply to the ticked similar photos, A accept all listed,
          / search.

    \b
    Examples:
      terc-tag review tagged
      terc-tag review tagged --no-browser --port 8765

    Exit codes: 130 stopped with Ctrl-C (as every command; each correction is saved when it is made),
    2 OUTPUT is not a tagged OUTPUT or the port is taken.
    """
    import webbrowser

    from tagger.review.app import Review, Server, is_loopback
    from tagger.state import state_file

    if not state_file(output_dir).is_file():
        fail(f"{output_dir} is not a tagged OUTPUT (no .terc-tag/state.sqlite); run `terc-tag tag INPUT OUTPUT` first")
    if not is_loopback(host):
        click.echo(f"terc-tag: warning: listening on {host}: other machines can reach this page "
                   "(they still need the token)", err=True)
    try:
        server = Server(Review(output_dir, open_bundle(model_dir, backend), threshold), host, port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        fail(f"cannot listen on {host}:{port}: {reason}" + (" (another program uses it; try --port 0)"
                                                           if exc.errno == errno.EADDRINUSE else ""))
    echo_line(f"Reviewing {output_dir}: open {server.url}  (Ctrl-C stops)")
    if not no_browser:
        webbrowser.open(server.url)
    with server:
        try:
            server.wait()
        except KeyboardInterrupt:
            click.echo("terc-tag: review stopped (Ctrl-C); every correction made is saved", err=True)
            sys.exit(EXIT_INTERRUPTED)
