"""``ppacer-async completion bash|zsh``: a shell completion script, generated from the
command's own parser so that it always knows every command and option."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Iterator

from .common import EXIT_OK, Subparsers

_BASH = """\
# ppacer-async completion for bash; load it with
#   source <(ppacer-async completion bash)
# (or write it to a file in /etc/bash_completion.d or ~/.local/share/bash-completion).
_ppacer_async() {{
    local cur prev path="" word i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$word" in
            -*) ;;
            *) case " $(_ppacer_async_words "$path") " in
                   *" $word "*) path="${{path:+$path }}$word" ;;
               esac ;;
        esac
    done
    case "$path|$prev" in
{choices}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_ppacer_async_options "$path")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_ppacer_async_words "$path")" -- "$cur"))
        if [[ -z "$(_ppacer_async_words "$path")" || "$path" == serve || "$path" == test ]]; then
            COMPREPLY+=($(compgen -f -- "$cur"))
        fi
    fi
}}
_ppacer_async_words() {{
    case "$1" in
{words}
    esac
}}
_ppacer_async_options() {{
    case "$1" in
{options}
    esac
}}
complete -o filenames -F _ppacer_async ppacer-async
"""

_ZSH = """\
#compdef ppacer-async
# ppacer-async completion for zsh; load it with
#   source <(ppacer-async completion zsh)
# It uses zsh's bash completion support.
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
"""


def _commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (command path, parser) pair: "" for the top, "dags", "dags show", ..."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{path} {name}".strip())


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    """The words that may follow: subcommands, and the choices of a positional."""
    return [
        str(name)
        for action in parser._actions
        if not action.option_strings and action.choices
        for name in action.choices
    ]


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings]


def bash_script(parser: argparse.ArgumentParser) -> str:
    words, options, choices = [], [], []
    for path, sub in _commands(parser):
        key = shlex.quote(path)
        words.append(f"        {key}) echo {shlex.quote(' '.join(_subcommands(sub)))} ;;")
        options.append(f"        {key}) echo {shlex.quote(' '.join(_options(sub)))} ;;")
        for action in sub._actions:
            if action.choices and action.option_strings:
                values = " ".join(str(choice) for choice in action.choices)
                for flag in action.option_strings:
                    pattern = shlex.quote(f"{path}|{flag}")
                    choices.append(
                        f"        {pattern}) COMPREPLY=($(compgen -W "
                        f'{shlex.quote(values)} -- "$cur")); return ;;'
                    )
    return _BASH.format(
        words="\n".join(words), options="\n".join(options), choices="\n".join(choices)
    )


def add_parser(subparsers: Subparsers, build: Callable[[], argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description=(
            "Print a completion script for bash or zsh. Load it in your shell's start-up "
            "file: source <(ppacer-async completion bash)"
        ),
    )
    parser.add_argument("shell", choices=("bash", "zsh"))

    def cmd_completion(args: argparse.Namespace) -> int:
        script = bash_script(build())
        print(script if args.shell == "bash" else _ZSH + script, end="")
        return EXIT_OK

    parser.set_defaults(handler=cmd_completion)
