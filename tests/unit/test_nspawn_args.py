import os
import re
import subprocess

import pytest

from ansible_nspawn_fast.errors import ConfigError
from ansible_nspawn_fast.nspawn_args import (
    LONG_OPTIONS,
    LONG_OPTIONS_252,
    REFUSED,
    SHORT_OPTIONS,
    SHORT_OPTSTRING,
    Arg,
    NspawnArgsError,
    OptionUse,
    check_nspawn_args,
    parse_nspawn_args,
)

NSPAWN = "/usr/bin/systemd-nspawn"
needs_nspawn = pytest.mark.skipif(not os.path.exists(NSPAWN), reason="systemd-nspawn is not installed")


def refusal(args):
    with pytest.raises(ConfigError) as err:
        check_nspawn_args(args)
    return str(err.value)


# (arguments, the word named, the canonical option it means)
REFUSED_CASES = [
    (["-D/"], "-D/", "--directory"),
    (["-D", "/x"], "-D", "--directory"),
    (["-D /x"], "-D /x", "--directory"),
    (["-qD/x"], "-qD/x", "--directory"),
    (["--directory=/x"], "--directory=/x", "--directory"),
    (["--direc=/x"], "--direc=/x", "--directory"),
    (["--direc", "/x"], "--direc", "--directory"),
    (["--mach=foo"], "--mach=foo", "--machine"),
    (["-Mfoo"], "-Mfoo", "--machine"),
    (["--templ=/x"], "--templ=/x", "--template"),
    (["-x"], "-x", "--ephemeral"),
    (["--eph"], "--eph", "--ephemeral"),
    (["--overlay=a:b:c"], "--overlay=a:b:c", "--overlay"),
    (["--overlay-ro=/a:/b"], "--overlay-ro=/a:/b", "--overlay-ro"),
    (["--image=x"], "--image=x", "--image"),
    (["-i/x.raw"], "-i/x.raw", "--image"),
    (["--oci-bundle=/b"], "--oci-bundle=/b", "--oci-bundle"),
    (["--pivot-root=/sub"], "--pivot-root=/sub", "--pivot-root"),
    (["--root-hash=00"], "--root-hash=00", "--root-hash"),
    (["--volatile"], "--volatile", "--volatile"),
    (["--vol=overlay"], "--vol=overlay", "--volatile"),
    (["--register=yes"], "--register=yes", "--register"),
    (["--keep-unit"], "--keep-unit", "--keep-unit"),
    (["--system"], "--system", "--system"),
    (["--uuid=0123456789abcdef0123456789abcdef"], "--uuid=0123456789abcdef0123456789abcdef", "--uuid"),
    (["-b"], "-b", "--boot"),
    (["-a"], "-a", "--as-pid2"),
    (["--pipe"], "--pipe", "--pipe"),
    (["-qP"], "-qP", "--pipe"),
    (["--console=interactive"], "--console=interactive", "--console"),
    (["--settings=override"], "--settings=override", "--settings"),
    (["--kill-signal=SIGKILL"], "--kill-signal=SIGKILL", "--kill-signal"),
    (["--share-system"], "--share-system", "--share-system"),
    (["-u", "nobody"], "-u", "--user"),
    (["--us=nobody"], "--us=nobody", "--user"),
    (["--uid=nobody"], "--uid=nobody", "--uid"),
    (["--private-users-chown"], "--private-users-chown", "--private-users-chown"),
    (["--private-users-ownership=map"], "--private-users-ownership=map", "--private-users-ownership"),
    (["-U"], "-U", "-U"),
    (["--private-users=pick"], "--private-users=pick", "--private-users"),
    (["--link-journal=host"], "--link-journal=host", "--link-journal"),
    (["-j"], "-j", "-j"),
    (["--help"], "--help", "--help"),
    (["-qh"], "-qh", "--help"),
    (["--version"], "--version", "--version"),
    (["--cleanup"], "--cleanup", "--cleanup"),
    # A value of 'help' prints a list and exits 0 instead of running the command.
    (["--resolv-conf=help"], "--resolv-conf=help", "--resolv-conf"),
    (["--capability=CAP_CHOWN,help"], "--capability=CAP_CHOWN,help", "--capability"),
    # Mounts over the root directory replace the tree.
    (["--bind=/srv/other:/"], "--bind=/srv/other:/", "--bind"),
    (["--bind=/"], "--bind=/", "--bind"),
    (["--bind-ro", "/x:/a/.."], "--bind-ro", "--bind-ro"),
    (["--bind=/x:\\/"], "--bind=/x:\\/", "--bind"),
    (["--tmpfs=/:mode=0755"], "--tmpfs=/:mode=0755", "--tmpfs"),
    (["--inaccessible=//"], "--inaccessible=//", "--inaccessible"),
    # After an allowed option, the next option is still checked.
    (["--bind=/a:/b", "-D/x"], "-D/x", "--directory"),
    (["--private-network", "--setenv=A=1", "-qx"], "-qx", "--ephemeral"),
]


@pytest.mark.parametrize("args, word, option", REFUSED_CASES)
def test_refused_options_name_the_word_and_the_option(args, word, option):
    message = refusal(args)
    assert f"{word!r} means {option}: " in message


@pytest.mark.parametrize("args, word", [
    (["--", "/bin/true"], "'--'"),
    (["--"], "'--'"),
    (["/bin/true"], "'/bin/true'"),
    (["bare"], "'bare'"),
    (["-q", "word", "-D/x"], "'word'"),
    (["-"], "'-'"),
    (["--bind", "/a:/b", "/bin/sh"], "'/bin/sh'"),
])
def test_the_command_is_the_connections(args, word):
    message = refusal(args)
    assert message.startswith(word) and "the connection supplies itself" in message


@pytest.mark.parametrize("args, fragments", [
    (["--pri"], ["'--pri' is ambiguous", "--private-network", "--private-users-ownership"]),
    (["--net=x"], ["'--net=x' is ambiguous", "--network-veth", "--network-zone"]),
    (["--over=/a:/b"], ["ambiguous", "--overlay, --overlay-ro"]),
    (["--root-h=00"], ["ambiguous", "--root-hash, --root-hash-sig"]),
    (["--bogus"], ["'--bogus' is not an option"]),
    (["--=x"], ["'--=x' is not an option"]),
    (["-y"], ["-y is not an option"]),
    (["-q=x"], ["-= is not an option"]),
    (["--bind"], ["'--bind' (--bind) needs a value"]),
    (["--bi", "/a"], ["ambiguous", "--bind, --bind-ro, --bind-user"]),
    (["-E"], ["-E (--setenv) needs a value"]),
    (["-qE"], ["-E (--setenv) needs a value"]),
    (["--private-network=1"], ["gives --private-network a value, but it takes none"]),
    (["--private-n=1"], ["'--private-n=1' gives --private-network a value"]),
])
def test_what_nspawn_would_reject_is_refused(args, fragments):
    message = refusal(args)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("args", [
    [],
    ["--bind=/a:/b"],
    ["--bind", "/a:/b"],
    ["--bind=/var/cache/apt"],
    ["--bind-ro=/a"],
    ["--bind=/a\\:b:/c"],
    ["--tmpfs=/var/tmp:mode=1777"],
    ["-E", "FOO=1"],
    ["-EFOO=1"],
    ["-qE", "FOO=1"],
    ["--setenv=FOO=1"],
    ["--setenv", "-D/x"],  # getopt takes the next word as the value, whatever it looks like
    ["--private-network"],
    ["--private-net"],
    ["-q"],
    ["--quiet"],
    ["--capability=CAP_NET_ADMIN"],
    ["--drop-capability=CAP_SYS_ADMIN,CAP_NET_RAW"],
    ["--read-only"],
    ["--hostname=web"],
    ["--chdir=/root"],
    ["--resolv-conf=off", "--timezone=off"],
    ["--private-users"],
    ["--private-users=identity"],
    ["--private-users=524288:65536"],
    ["-n", "--port=tcp:8080:80"],
    ["--network-zone=lab"],
    ["--property=MemoryMax=1G", "-S", "machine.slice"],
    ["--notify-ready=no"],
    ["--set-credential=id:value"],
])
def test_allowed_options_pass(args):
    check_nspawn_args(args)


def test_the_parser_walks_like_getopt_long():
    uses, operands = parse_nspawn_args(["-qD/x", "--bind", "/a", "--volatile", "x", "--", "cmd"])
    assert uses == [
        OptionUse("-qD/x", "--quiet", None),
        OptionUse("-qD/x", "--directory", "/x"),
        OptionUse("--bind", "--bind", "/a"),
        OptionUse("--volatile", "--volatile", None),  # an optional argument only comes with '='
    ]
    assert operands == ["x", "--", "cmd"]


@pytest.mark.parametrize("word, option", [
    ("--bind=/a", "--bind"),  # exact, though --bind-ro and --bind-user start with it
    ("--overlay=/a:/b", "--overlay"),
    ("--private-users=1", "--private-users"),
    ("--root-hash=00", "--root-hash"),
    ("--direct=/x", "--directory"),
])
def test_an_exact_name_wins_and_unique_prefixes_resolve(word, option):
    uses, _ = parse_nspawn_args([word])
    assert [u.option for u in uses] == [option]


def test_the_policy_sees_an_option_before_its_missing_value():
    assert "'-D' means --directory" in refusal(["-D"])
    with pytest.raises(NspawnArgsError):
        parse_nspawn_args(["-D"])


def test_the_tables_agree():
    for char, option in SHORT_OPTIONS.items():
        assert char in SHORT_OPTSTRING
        takes_arg = SHORT_OPTSTRING[SHORT_OPTSTRING.index(char) + 1:].startswith(":")
        if option.startswith("--"):
            assert (LONG_OPTIONS[option[2:]] is Arg.REQUIRED) == takes_arg, option
    assert set(SHORT_OPTSTRING) - {"+", ":"} == set(SHORT_OPTIONS)
    known = {f"--{name}" for name in LONG_OPTIONS} | {"-U", "-j"}
    assert set(REFUSED) <= known


def _nspawn(*args, cwd):
    env = {"PATH": "/usr/bin:/bin", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "cat", "LC_ALL": "C"}
    return subprocess.run([NSPAWN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


@needs_nspawn
def test_every_option_in_nspawn_help_is_in_the_table(tmp_path):
    text = _nspawn("--help", cwd=tmp_path).stdout
    longs = set(re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", text))
    shorts = set(re.findall(r"^\s+-([A-Za-z])\b", text, re.MULTILINE))
    assert longs and shorts
    assert longs - set(LONG_OPTIONS) == set()
    assert shorts - set(SHORT_OPTIONS) == set()


def _shortest_prefix(name):
    for size in range(1, len(name) + 1):
        prefix = name[:size]
        if prefix == name or [n for n in LONG_OPTIONS if n.startswith(prefix)] == [name]:
            return prefix


# Only argument errors are provoked: nspawn's option parser stops before running anything.
@needs_nspawn
@pytest.mark.parametrize("name", sorted(n for n, kind in LONG_OPTIONS_252.items()
                                        if kind is not Arg.OPTIONAL and n != "user"))  # --user changed after 252
def test_nspawn_reads_our_shortest_abbreviation_with_our_argument_kind(name, tmp_path):
    prefix = "--" + _shortest_prefix(name)
    if LONG_OPTIONS_252[name] is Arg.REQUIRED:
        result, expected = _nspawn(prefix, cwd=tmp_path), "requires an argument"
    else:
        result, expected = _nspawn(prefix + "=x", cwd=tmp_path), "doesn't allow an argument"
    assert result.returncode != 0
    assert expected in result.stderr
    # glibc names the option it resolved; newer systemd repeats the word as written.
    assert f"'--{name}'" in result.stderr or f"'{prefix}'" in result.stderr


@needs_nspawn
@pytest.mark.parametrize("word", ["--pri", "--net", "--over", "--root-h", "--sel"])
def test_nspawn_also_finds_our_ambiguous_prefixes_ambiguous(word, tmp_path):
    # The unknown options after it make nspawn stop even if it took the word otherwise.
    result = _nspawn(word, "--zz-not-an-option", "--zz-not-an-option", cwd=tmp_path)
    assert result.returncode != 0
    assert "ambiguous" in result.stderr
    with pytest.raises(NspawnArgsError, match="ambiguous"):
        parse_nspawn_args([word])
