import re

import pytest

from sana_wm.errors import InputError
from sana_wm.utils.prompt import read_prompt_file


def test_reads_utf8_with_bom_and_strips(tmp_path) -> None:
    p = tmp_path / "p.txt"
    p.write_bytes("\ufeff  Une rue pavée à Paris, 夕方\n\n".encode())
    assert read_prompt_file(p) == "Une rue pavée à Paris, 夕方"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "--prompt: file not found"),
        (b"caf\xe9 latin-1", "not UTF-8 text (bad byte at offset 3)"),
        (b"  \n\t ", "is empty"),
        ("dir", "cannot read"),
    ],
)
def test_bad_prompt_files(tmp_path, content, message) -> None:
    p = tmp_path / "p.txt"
    if content == "dir":
        p.mkdir()
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)):
        read_prompt_file(p)
