"""lcbayes: Bayesian hierarchical longitudinal models for inter-organizational learning communities."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lcbayes")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"


def main() -> None:
    """The ``lcbayes`` command (:mod:`lcbayes.cli`). Imported here, so that Ctrl-C while the command line loads ends
    with one line and status 130, as it does while a command runs."""
    import os
    import sys

    try:
        from lcbayes.cli import app
    except KeyboardInterrupt:
        print("interrupted: stopped while starting", file=sys.stderr)
        raise SystemExit(130) from None
    try:
        app()
    except KeyboardInterrupt:      # before a command's own handling is in place (typer still building the command
        print("interrupted: stopped while starting", file=sys.stderr)   # line): no sampler has started yet
        raise SystemExit(130) from None
    except SystemExit as done:
        if done.code != 130:
            raise
        from lcbayes import cli

        if not cli.interrupt_reported:   # typer turns a Ctrl-C while it reads the command line into a silent 130
            print("interrupted: stopped while starting", file=sys.stderr)
        # interrupted: the sampler's native threads may still run, and tearing the interpreter down under them can
        # crash it (SIGSEGV) after the message; everything to clean up has been (the finally blocks ran), so leave now
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
