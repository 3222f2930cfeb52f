"""``docproc completion SHELL``: click's tab completion, as a script for bash, zsh or fish."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_DOCPROC_COMPLETE"


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the tab-completion script for SHELL (bash, zsh or fish).

    \b
    bash: eval "$(docproc completion bash)"         (in ~/.bashrc)
    zsh:  eval "$(docproc completion zsh)"          (in ~/.zshrc)
    fish: docproc completion fish > ~/.config/fish/completions/docproc.fish
    """
    root = ctx.find_root().command
    cls = get_completion_class(shell)
    if cls is None:  # registered by click for each of SHELLS
        raise click.UsageError(f"no completion for {shell}")
    click.echo(cls(root, {}, "docproc", COMPLETE_VAR).source())
