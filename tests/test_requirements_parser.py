"""doctor/local/requirements.py rule by rule: every line kind, option, note and error, compared whole.

Issue 20's mutation run left these rules unchecked (a parser that dropped every option after ``--pre``,
a note or an entry that lost its file or line); each test here compares what the parser returns in
full, so that a field lost or a rule turned around fails it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement

from doctor.errors import UsageError
from doctor.local.requirements import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_FILES,
    Entry,
    Include,
    Line,
    Option,
    conda_requirement,
    credential_values,
    join_lines,
    load_requirements,
    mask_credentials,
    parse_file,
    parse_text,
    portable,
    read_text,
    requirement_files,
    strip_comment,
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- one line at a time ---------------------------------------------------------------------------


def test_join_lines_numbers_and_ends_continuations_as_pip():
    text = "a \\\n  b\nc\n# note \\\nd \\\n# ends it\ne \\\n"
    assert join_lines(text) == [(1, "a   b"), (3, "c"), (4, " # note \\"), (5, "d  # ends it"), (7, "e ")]
    assert join_lines("") == []
    assert join_lines("Xa \\\nb\nc \\\nd \\\n") == [(1, "Xa b"), (3, "c d ")]  # continued to the end


def test_strip_comment_keeps_a_url_fragment():
    assert strip_comment("pkg @ git+https://h/r.git#egg=pkg  # why") == "pkg @ git+https://h/r.git#egg=pkg"
    assert strip_comment("# all comment") == ""
    assert strip_comment("six#not-a-comment") == "six#not-a-comment"


def test_every_kind_of_line_is_read_whole(tmp_path):
    path = tmp_path / "req.txt"
    text = "\n".join(
        [
            "# a comment",
            "numpy==1.26.4 --hash=sha256:aa --hash sha256:bb --config-settings k=v  # pinned",
            "--pre --index-url https://i.example/simple --no-index",  # issue 20: nothing after --pre was kept
            "-e ./lib",
            "-r base.txt --pre",
            "-c https://x.example/c.txt",
            "https://f.example/pkg-1.0.tar.gz ; python_version > '3'",
            "./dist/pkg-1.0-py3-none-any.whl",
            "pkg @ https://f.example/pkg.whl",
            "-ihttps://short.example/simple",
            "--index=https://alias.example/simple",
            "--extra-index https://extra.example/simple",
            "-x stray --bogus --prefer-binary",
            "--editable=../other --require-hashes",
            "--constraint=pins.txt -r more.txt",
        ]
    )

    def opt(name: str, value: str | None, line: int) -> Option:
        return Option(name, value, path, line)

    hashes = ("sha256:aa", "sha256:bb")
    assert parse_text(text, path) == [
        Line(
            path,
            2,
            "numpy==1.26.4 --hash=sha256:aa --hash sha256:bb --config-settings k=v",
            entry=Entry(
                path,
                2,
                "numpy==1.26.4",
                "requirement",
                Requirement("numpy==1.26.4"),
                hashes,
                (opt("--config-settings", "k=v", 2),),
            ),
        ),
        Line(
            path,
            3,
            "--pre --index-url https://i.example/simple --no-index",
            options=(
                opt("--pre", None, 3),
                opt("--index-url", "https://i.example/simple", 3),
                opt("--no-index", None, 3),
            ),
        ),
        Line(path, 4, "-e ./lib", entry=Entry(path, 4, "./lib", "editable")),
        Line(
            path,
            5,
            "-r base.txt --pre",
            options=(opt("--pre", None, 5),),
            include=Include("-r", "base.txt", tmp_path / "base.txt"),
        ),
        Line(path, 6, "-c https://x.example/c.txt", include=Include("-c", "https://x.example/c.txt", None)),
        Line(
            path,
            7,
            "https://f.example/pkg-1.0.tar.gz ; python_version > '3'",
            entry=Entry(path, 7, "https://f.example/pkg-1.0.tar.gz ; python_version > '3'", "url"),
        ),
        Line(
            path,
            8,
            "./dist/pkg-1.0-py3-none-any.whl",
            entry=Entry(path, 8, "./dist/pkg-1.0-py3-none-any.whl", "path"),
        ),
        Line(
            path,
            9,
            "pkg @ https://f.example/pkg.whl",
            entry=Entry(
                path,
                9,
                "pkg @ https://f.example/pkg.whl",
                "requirement",
                Requirement("pkg @ https://f.example/pkg.whl"),
            ),
        ),
        Line(
            path,
            10,
            "-ihttps://short.example/simple",
            options=(opt("--index-url", "https://short.example/simple", 10),),
        ),
        Line(
            path,
            11,
            "--index=https://alias.example/simple",
            options=(opt("--index-url", "https://alias.example/simple", 11),),
        ),
        Line(
            path,
            12,
            "--extra-index https://extra.example/simple",
            options=(opt("--extra-index-url", "https://extra.example/simple", 12),),
        ),
        Line(
            path,
            13,
            "-x stray --bogus --prefer-binary",
            options=(
                opt("(ignored)", "-x", 13),
                opt("(ignored)", "stray", 13),
                opt("(unknown)", "--bogus", 13),
                opt("--prefer-binary", None, 13),
            ),
        ),
        Line(
            path,
            14,
            "--editable=../other --require-hashes",
            entry=Entry(path, 14, "../other", "editable"),
            options=(opt("--require-hashes", None, 14),),
        ),
        Line(
            path,
            15,
            "--constraint=pins.txt -r more.txt",
            options=(opt("--requirement", "more.txt", 15),),  # one include a line, as pip
            include=Include("-c", "pins.txt", tmp_path / "pins.txt"),
        ),
    ]


def test_entries_of_constraint_files_and_hashes_on_paths_and_urls(tmp_path):
    path = tmp_path / "c.txt"
    text = "./a.whl --hash=sha256:aa --pre\nhttps://h/b.tar.gz --hash=sha256:bb\nsix==1.16.0\n"
    lines = parse_text(text, path, constraint=True)
    assert [line.entry for line in lines] == [
        Entry(path, 1, "./a.whl", "path", None, ("sha256:aa",), (Option("--pre", None, path, 1),), True),
        Entry(path, 2, "https://h/b.tar.gz", "url", None, ("sha256:bb",), (), True),
        Entry(path, 3, "six==1.16.0", "requirement", Requirement("six==1.16.0"), (), (), True),
    ]
    editable = parse_text("-e ./x\n", path, constraint=True)[0].entry
    assert editable == Entry(path, 1, "./x", "editable", None, (), (), True)


@pytest.mark.parametrize(
    "text, kind",
    [
        ("file:///srv/pkg.whl", "url"),
        ("git+https://h/r.git#egg=r", "url"),
        ("name@https://h/x.whl", "requirement"),  # a name before "@": judged by its name
        ("./lib", "path"),
        ("../lib", "path"),
        ("/abs/lib", "path"),
        ("~/lib", "path"),
        ("lib/sub", "path"),
        ("C:\\lib", "path"),
        ("\\\\server\\share", "path"),
        ("pkg-1.0.tar.gz", "path"),
        ("pkg-1.0-py3-none-any.whl", "path"),
        ("pkg.zip", "path"),
        ("./lib;python_version>'3'", "path"),
        ("./lib ; python_version>'3'", "path"),
        ("six", "requirement"),
        ("six>=1.0; python_version > '3'", "requirement"),
        ("./x@y", "path"),  # a path holding an "@"
        ("pkg-1.0.tar.gz;python_version>'3'", "path"),  # the marker is cut before the archive is seen
        ("my dir/pkg.whl", "path"),
        ("file:pkg-1.0.tar.gz", "url"),
        (".", "path"),
        ("~", "path"),
    ],
)
def test_what_a_line_names(tmp_path, text, kind):
    (line,) = parse_text(text, tmp_path / "r.txt")
    assert line.entry is not None and line.entry.kind == kind


@pytest.mark.parametrize(
    "text, message, hint",
    [
        ("--index-url", "L:1: --index-url needs a value", "write `--index-url VALUE`"),
        ("six -i", "L:1: --index-url needs a value", "write `--index-url VALUE`"),
        ("--hash 'x", "L:1: cannot split the options (No closing quotation)", "close the quote"),
    ],
)
def test_option_errors_name_the_place(tmp_path, text, message, hint):
    with pytest.raises(UsageError) as info:
        parse_text(text, tmp_path / "r.txt", label="L")
    assert (info.value.message, info.value.hint) == (message, hint)


def test_a_bad_requirement_is_named_clipped_and_masked(tmp_path):
    path = tmp_path / "r.txt"
    with pytest.raises(UsageError) as info:
        parse_text("six[=1\n", path)
    try:
        Requirement("six[=1")
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]  # packaging's reason, its first line
    assert info.value.message == f"{path}:1: 'six[=1' is not a valid requirement ({first})"
    with pytest.raises(UsageError) as info:
        parse_text("x" * 119 + "[", path)
    assert f"'{'x' * 119}[' is not a valid requirement" in info.value.message  # 120 characters: shown whole
    assert info.value.hint == "write NAME[EXTRAS] SPECIFIER ; MARKER, as pip takes it"
    long = "x" * 200 + "["
    with pytest.raises(UsageError) as info:
        parse_text(long, path)
    assert f"'{'x' * 119}…' is not a valid requirement" in info.value.message
    with pytest.raises(UsageError) as info:
        parse_text("pkg @ https://u:pw-1@h/x.whl ==1", path)
    assert "pw-1" not in str(info.value)


# -- credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, masked, secrets",
    [
        ("https://u:p@h/x", "https://u:***@h/x", {"p"}),
        ("https://tok@h/x", "https://***@h/x", {"tok"}),
        ("git+ssh://git@h/r.git", "git+ssh://git@h/r.git", set()),
        ("ssh://u:pw@h/r", "ssh://u:***@h/r", {"pw"}),
        ("https://@h/x", "https://@h/x", set()),
        ("https://u:${PIP_PASSWORD}@h/x", "https://u:***@h/x", set()),  # pip expands it: not a secret here
        ("https://u:p%40ss@h/x", "https://u:***@h/x", {"p%40ss", "p@ss"}),
        ("a https://u:1@h b https://v:2@i", "a https://u:***@h b https://v:***@i", {"1", "2"}),
        ("no url here u:p@h", "no url here u:p@h", set()),
    ],
)
def test_credentials_masked_and_named(text, masked, secrets):
    assert mask_credentials(text) == masked
    assert credential_values(text) == secrets


def test_display_strings_mask_and_where_names_the_file(tmp_path):
    path = tmp_path / "r.txt"
    assert Option("--index-url", "https://u:p@h/s", path, 3).display == "--index-url https://u:***@h/s"
    assert Option("--pre", None, path, 3).display == "--pre"
    entry = Entry(path, 7, "pkg @ https://tok@h/p.whl", "requirement")
    assert (entry.display, entry.where) == ("pkg @ https://***@h/p.whl", "r.txt:7")


# -- following files ------------------------------------------------------------------------------


def test_a_tree_of_files_gives_its_notes_options_entries_and_files(tmp_path):
    root = write(
        tmp_path,
        "requirements.txt",
        "--pre --index-url https://u:idx-pw@i/simple\n"
        "-r sub/base.txt\n"
        "-c pins.txt\n"
        "-r https://u:inc-pw@h/more.txt\n"
        "-e ./lib\n"
        "./dist/a.whl\n"
        "https://h/b.tar.gz\n"
        "six==1.16.0\n"
        "-x --bogus\n",
    )
    write(tmp_path, "sub/base.txt", "requests>=2\n-r ../requirements.txt\n")
    write(tmp_path, "pins.txt", "numpy<2\n-r pinned-more.txt\n")
    write(tmp_path, "pinned-more.txt", "idna==3.7\n")
    reqs = load_requirements(root)
    assert reqs.notes == [
        "requirements.txt:1: option --pre kept for the installer, not judged",
        "requirements.txt:1: option --index-url https://u:***@i/simple kept for the installer, not judged",
        "base.txt:2: requirements.txt is already being read (a cycle): not read again",
        "requirements.txt:3: constraints of pins.txt: judged where a requirement names them",
        "requirements.txt:4: -r https://u:***@h/more.txt: a remote file, not read",
        "requirements.txt:5: ./lib is an editable install: installed by fix, not judged",
        "requirements.txt:6: ./dist/a.whl is a local path: installed by fix, not judged",
        "requirements.txt:7: https://h/b.tar.gz is a URL: installed by fix, not judged",
        "requirements.txt:9: '-x' after the options: ignored",
        "requirements.txt:9: option --bogus is unknown to pip: ignored",
    ]
    assert reqs.files == [root, tmp_path / "sub/base.txt", tmp_path / "pins.txt", tmp_path / "pinned-more.txt"]
    # pip: -r inside a constraints file adds requirements
    assert [str(r) for r in reqs.requirements] == ["requests>=2", "idna==3.7", "six==1.16.0"]
    assert [(e.text, e.constraint) for e in reqs.constraints] == [("numpy<2", True)]
    assert [(e.where, e.kind) for e in reqs.entries] == [
        ("base.txt:1", "requirement"),
        ("pins.txt:1", "requirement"),
        ("pinned-more.txt:1", "requirement"),
        ("requirements.txt:5", "editable"),
        ("requirements.txt:6", "path"),
        ("requirements.txt:7", "url"),
        ("requirements.txt:8", "requirement"),
    ]
    assert [(o.name, o.value) for o in reqs.options] == [
        ("--pre", None),
        ("--index-url", "https://u:idx-pw@i/simple"),
        ("(ignored)", "-x"),
        ("(unknown)", "--bogus"),
    ]
    assert reqs.secret_values() == {"idx-pw", "inc-pw"}
    assert reqs.find("SIX") is reqs.requirements[2] and reqs.find("numpy") is None  # constraints are not judged
    assert requirement_files([root, tmp_path / "pins.txt"]) == reqs.files


def test_include_bounds(tmp_path):
    for level in range(MAX_DEPTH):
        write(tmp_path, f"deep/{level}.txt", f"-r {level + 1}.txt\n")
    write(tmp_path, f"deep/{MAX_DEPTH}.txt", "six\n")
    assert [r.name for r in load_requirements(tmp_path / "deep/0.txt").requirements] == ["six"]  # 16 deep: read
    write(tmp_path, f"deep/{MAX_DEPTH}.txt", f"-r {MAX_DEPTH + 1}.txt\n")
    write(tmp_path, f"deep/{MAX_DEPTH + 1}.txt", "six\n")
    with pytest.raises(UsageError) as info:
        load_requirements(tmp_path / "deep/0.txt")
    assert (info.value.message, info.value.hint) == (
        f"{MAX_DEPTH}.txt:1: includes nested more than {MAX_DEPTH} files deep",
        "flatten them",
    )

    for index in range(MAX_FILES):
        write(tmp_path, f"wide/{index}.txt", f"pkg{index}\n")
    write(tmp_path, "wide/root.txt", "".join(f"-r {index}.txt\n" for index in range(MAX_FILES - 1)))
    assert len(load_requirements(tmp_path / "wide/root.txt").files) == MAX_FILES
    write(tmp_path, "wide/root.txt", "".join(f"-r {index}.txt\n" for index in range(MAX_FILES)))
    with pytest.raises(UsageError) as info:
        load_requirements(tmp_path / "wide/root.txt")
    assert (info.value.message, info.value.hint) == (
        f"root.txt:{MAX_FILES}: more than {MAX_FILES} included files",
        "merge some of them",
    )


def test_an_included_files_error_names_the_line_that_includes_it(tmp_path):
    root = write(tmp_path, "requirements.txt", "six\n-r bad.txt\n")
    write(tmp_path, "bad.txt", "--index-url\n")
    with pytest.raises(UsageError) as info:
        load_requirements(root)
    assert (info.value.message, info.value.hint) == (
        f"requirements.txt:2 includes it: {tmp_path / 'bad.txt'}:1: --index-url needs a value",
        "write `--index-url VALUE`",
    )
    with pytest.raises(UsageError) as info:
        load_requirements(write(tmp_path, "nul.txt", "-r a\0b.txt\n"))
    named = str(tmp_path / "a\0b.txt")
    shown = named if len(named) <= 120 else named[:119] + "…"
    assert info.value.message == f"nul.txt:1: {shown!r} does not name a readable file"
    with pytest.raises(UsageError) as info:  # the file given, not included: no place to name
        load_requirements(tmp_path / "a\0b.txt")
    assert info.value.message == f"{shown!r} does not name a readable file"


def test_portable_lines_read_the_same_from_any_folder(tmp_path):
    (tmp_path / "wheels").mkdir()
    path = tmp_path / "r.txt"
    text = (
        "-r base.txt\n"
        "-c https://h/c.txt\n"
        "six\n"
        "--find-links wheels --pre -x\n"
        "--find-links https://h/w/ --pre\n"
        "--find-links missing-folder\n"
    )
    lines = [portable(line) for line in parse_text(text, path)]
    assert lines == [
        f"-r {tmp_path / 'base.txt'}",
        "-c https://h/c.txt",
        "six",
        f"--find-links {tmp_path / 'wheels'} --pre -x",
        "--find-links https://h/w/ --pre",
        "--find-links missing-folder",
    ]
    for text in ("--index-url=https://h/simple --pre", "-e ./lib --pre", "six --hash=sha256:aa"):
        assert portable(parse_text(text, path)[0]) == text  # nothing moved: as written
    quoted = parse_text("--find-links 'wheels' --trusted-host 'a b'\n", tmp_path / "q.txt")[0]
    assert portable(quoted) == f"--find-links {tmp_path / 'wheels'} --trusted-host 'a b'"


# -- reading a file -------------------------------------------------------------------------------


def test_read_text(tmp_path):
    assert read_text(write(tmp_path, "bom.txt", "\ufeffsix\n")) == "six\n"
    big = tmp_path / "big.txt"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(UsageError, match="larger than 8 MiB"):
        read_text(big)
    exact = tmp_path / "exact.txt"
    exact.write_bytes(b"#" * MAX_BYTES)
    assert len(read_text(exact)) == MAX_BYTES
    with pytest.raises(UsageError) as info:
        read_text(tmp_path)
    assert info.value.message == f"requirements file {tmp_path} cannot be read: it is a directory, not a file"
    with pytest.raises(UsageError) as info:
        read_text(tmp_path / "a\0b")
    assert info.value.message == (
        f"requirements file {tmp_path / 'a'}\0b cannot be read: it is not a usable path (it contains a NUL byte)"
    )
    with pytest.raises(UsageError) as info:
        read_text(tmp_path / "nope.yml", "environment file")
    assert info.value.message == f"environment file {tmp_path / 'nope.yml'} does not exist"


# -- environment.yml ------------------------------------------------------------------------------


def test_environment_yml_whole(tmp_path):
    (tmp_path / "wheels").mkdir()
    path = write(
        tmp_path,
        "environment.yml",
        "name: x\n"
        "dependencies:\n"
        "  - python=3.12\n"
        "  - pip\n"
        "  - conda-forge::numpy=1.26\n"
        "  -\n"
        "  - '@@@'\n"
        "  - pandas >=2.0<<3\n"
        "  - pip:\n"
        "    - --find-links wheels\n"
        "    -\n"
        "    - six==1.16.0\n",
    )
    env = load_requirements(path)
    assert env.python == "3.12"
    assert env.path == path and env.files == [path]
    assert [str(r) for r in env.requirements] == ["numpy==1.26.*", "six==1.16.0"]
    assert env.entries[0] == Entry(path, 0, "numpy==1.26.*", "requirement", Requirement("numpy==1.26.*"))
    assert env.notes == [
        "environment.yml: conda dependency '@@@' not judged",
        "environment.yml: conda dependency 'pandas >=2.0<<3' not judged",
        "environment.yml (pip:):1: option --find-links wheels kept for the installer, not judged",
    ]
    assert env.pip_lines() == ["numpy==1.26.*", f"--find-links {tmp_path / 'wheels'}", "six==1.16.0"]
    bare = load_requirements(write(tmp_path, "any.yaml", "dependencies: [python, numpy]\n"))
    assert bare.python is None and [str(r) for r in bare.requirements] == ["numpy"]
    with pytest.raises(UsageError) as info:
        load_requirements(write(tmp_path, "opt.yml", "dependencies: [{pip: [six, --index-url]}]\n"))
    assert info.value.message == f"{tmp_path / 'opt.yml'} (pip:):2: --index-url needs a value"
    assert load_requirements(write(tmp_path, "bare.yml", "name: x\n")).requirements == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("dependencies:\n", "expected a mapping with a 'dependencies' list (conda's environment.yml format)"),
        ("- a\n- b\n", "expected a mapping with a 'dependencies' list (conda's environment.yml format)"),
        ("dependencies: [six, 42]\n", "dependency 2 is 42, neither a string nor a 'pip:' list"),
        ("dependencies: [{pip: [six, {a: 1}]}]\n", "pip item 2 is a mapping {'a': 1}, not a requirement string"),
        ("dependencies: [{pip: [[x]]}]\n", "pip item 1 is a list ['x'], not a requirement string"),
        ("dependencies: [\n", "invalid YAML at line 2, column 1: expected the node content, but found '<stream end>'"),
    ],
)
def test_environment_yml_errors(tmp_path, text, message):
    path = write(tmp_path, "env.yml", text)
    with pytest.raises(UsageError) as info:
        load_requirements(path)
    assert info.value.message == f"{path}: {message}"
    if "YAML" in message:
        assert info.value.hint == "fix the YAML of the environment file"


def test_an_unreadable_environment_yml_says_environment_file(tmp_path):
    path = tmp_path / "env.yml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError) as info:
        load_requirements(path)
    assert info.value.message.startswith(f"environment file {path} cannot be read: it is not UTF-8 text")


@pytest.mark.parametrize(
    "value, shown",
    [
        ({"a": 1}, "a mapping {'a': 1}"),
        ([1, 2], "a list [1, 2]"),
        (None, "null"),
        (42, "42"),
        ("https://u:pw@h", "'https://u:***@h'"),
        ("x" * 100, f"'{'x' * 17}...{'x' * 18}'"),
        # masked before it is cut: cut first, the '@' went and the password's start showed ('SECRETS...')
        (
            "https://u:" + "SECRET" * 3 + "@very-long-host-name.example.com/simple",
            "'https://u:***@ver...example.com/simple'",
        ),
        (
            {"index": "https://u:" + "SECRET" * 3 + "@very-long-host-name.example.com/simple"},
            "a mapping {'index': 'https://u:***@ver...example.com/simp...",
        ),
    ],
)
def test_describe(value, shown):
    """environment.yml's values are described by YAML's one describer (``doctor.parsers.yaml_load``)."""
    from doctor.parsers.yaml_load import describe

    assert describe(value) == shown


@pytest.mark.parametrize(
    "dep, want",
    [
        ("numpy", ("numpy", None)),
        ("numpy=*", ("numpy", None)),
        ("numpy==*", ("numpy", None)),
        ("numpy *", ("numpy", None)),
        ("numpy==1.26.4=py312_0", ("numpy", "==1.26.4")),
        ("numpy=1.26.4=py312_0", ("numpy", "==1.26.4.*")),
        ("numpy 1.26", ("numpy", "==1.26.*")),
        ("numpy=1.26.", ("numpy", "==1.26.*")),
        ("numpy=1.26*", ("numpy", "==1.26*")),
        ("numpy>=1.26", ("numpy", ">=1.26")),
        ("numpy <2", ("numpy", "<2")),
        ("numpy >= 1.26, < 2", ("numpy", ">=1.26,<2")),
        ("numpy!=1.0", ("numpy", "!=1.0")),
        ("numpy~=1.26", ("numpy", "~=1.26")),
        ("numpy=", ("numpy", None)),
        ("conda-forge::numpy=1.26", ("numpy", "==1.26.*")),
        ("  conda-forge :: numpy ", ("numpy", None)),
        ("@@@", None),
    ],
)
def test_conda_requirement(dep, want):
    assert conda_requirement(dep) == want


def test_parse_file_reads_requirements_not_constraints_unless_told(tmp_path):
    path = write(tmp_path, "r.txt", "six\n")
    assert [line.entry.constraint for line in parse_file(path) if line.entry] == [False]
    assert [line.entry.constraint for line in parse_file(path, constraint=True) if line.entry] == [True]


def test_an_editable_line_with_options_stays_as_written(tmp_path):
    (tmp_path / "wheels").mkdir()
    line = parse_text("-e ./lib --find-links wheels\n", tmp_path / "r.txt")[0]
    assert portable(line) == "-e ./lib --find-links wheels"


def test_includes_under_an_environment_yml_pip_section_have_the_same_depth_bound(tmp_path):
    # the pip: section is one level below the environment.yml, as a file beside it would be
    # (the root file is level 0, so the pip: section is 1 and its first include 2: 15 files fit)
    for level in range(1, MAX_DEPTH - 1):
        write(tmp_path, f"{level}.txt", f"-r {level + 1}.txt\n")
    write(tmp_path, f"{MAX_DEPTH - 1}.txt", "six\n")
    env = load_requirements(write(tmp_path, "env.yml", "dependencies: [{pip: [-r 1.txt]}]\n"))
    assert [str(r) for r in env.requirements] == ["six"]
    write(tmp_path, f"{MAX_DEPTH - 1}.txt", f"-r {MAX_DEPTH}.txt\n")
    write(tmp_path, f"{MAX_DEPTH}.txt", "six\n")
    with pytest.raises(UsageError, match=f"more than {MAX_DEPTH} files deep"):
        load_requirements(tmp_path / "env.yml")
