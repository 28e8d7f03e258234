#!/usr/bin/env python3
"""Print the test tables of clean.rs: each input with what Python gives for it.

`open_clip_clean` cases hold `open_clip.tokenizer._clean_lower(text)`; `fix_text` cases hold
`ftfy.fix_text(text)`. A case that ftfy's mojibake repair (`fix_encoding`, not reproduced in
Rust) would change is refused, so every expected string here is Python's exact output.

Usage: python scripts/clean/gen_clean_cases.py crates/clip-text/src/clean.rs
(rewrites the block between the GENERATED CASES markers of that file in place; run
`cargo fmt` after it)
"""
import html
import html.entities
import sys
import unicodedata

from ftfy.chardata import HTML_ENTITIES, WIDTH_MAP

import ftfy

from pyref import VERSIONS, is_mojibake_case, open_clip_clean

# (group, input); each group becomes one `const` table and one `#[test]`.
CLEAN_CASES = {
    "ftfy_entities": [
        "Broken text&hellip; it&#x2019;s ﬂubberiﬁc!",
        "&lt;tag&gt; &quot;quoted&quot;",
        "P&EACUTE;REZ",
        "BUNDESSTRA&SZLIG;E",
        "&ntilde; &Ntilde; &NTILDE; &nTILDE;",
        "&FRAC12; cup",
        "&amp;amp;amp;amp; four times",
        "&Jscr;ohn &HilbertSpace;ancock &checkmark;",
        "&LTRI; is not an entity ftfy decodes",
        "&#59; stays for ftfy, &#x3B; too",
        "&#65a; &#0x41; &#xZZ;",
    ],
    "html_named": [
        "<b>fish &amp; chips</b>",
        "<p>&amp;lt;double&amp;gt;</p>",
        "<p>&amp;amp;amp; three levels, two unescapes</p>",
        "<i>&notit; &notin; &not</i>",
        "<i>&ampxyz &amp &AMP &copy2024 &nbspx &lt3</i>",
        "<i>&ampé &am; &; & amp; &</i>",
        "<i>&CounterClockwiseContourIntegral; &CounterClockwiseContourIntegralX;</i>",
        "<i>&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaamp; 33 letters</i>",
        "<i>&eacute &Eacute; &EACUTE; &eacute;</i>",
        "<i>&NotNestedGreaterGreater; &nvlt; &bne;</i>",
    ],
    "html_numeric": [
        "<i>&#65;&#x42;&#X43;&#68 &#x45</i>",
        "<i>&#0; &#1; &#8; &#9; &#11; &#13; &#31; &#127;</i>",
        "<i>&#x80; &#x81; &#x85; &#x8d; &#x93;x&#x94; &#x9f;</i>",
        "<i>&#xD800; &#xdfff; &#x110000; &#99999999999999999999; &#x10FFFF;</i>",
        "<i>&#xFFFE; &#xfdd0; &#xFDEF; &#x1FFFF; &#xFDF0;</i>",
        "<i>&#x1F600; &#128512 &#x; &# &#; &#xg;</i>",
        "<i>&#x1c;&#x1d;&#x1e;&#x1f; a</i>",
        "&#000065; &#x000041; &#00;",
    ],
    "segments": [
        "first &amp; line\nsecond <b>&amp;</b>\nthird &amp;amp;",
        "first &amp;amp; line\r\nsecond &amp;amp;\n<b>\nfourth &amp;amp;",
        "no tag &amp;\n&amp;amp; still none",
    ],
    "c1_controls": [
        "price \x80 5 \x85 and \x93quoted\x94",
        "dash\x96dash \x97 bullet\x95 tm\x99",
        "undefined \x81 \x8d \x8f \x90 \x9d stay",
    ],
    "ligatures": [
        "ﬂuﬃeﬆ ﬀ ﬄ ﬅ",
        "Ĳsselmeer ĳs",
        "Ǆ ǅ ǆ Ǉ ǈ ǉ Ǌ ǋ ǌ Ǳ ǲ ǳ",
        "ŉ afrikaans",
        "ﬓ armenian ligature stays, æ œ stay",
    ],
    "width": [
        "ＬＯＵＤ　ＮＯＩＳＥＳ",
        "Ｕﾀｰﾝ",
        "ｶﾞｷﾞｸﾞ ﾊﾟ",
        "￥１００ ￠ ￡ ￦ ￨ ￭",
        "ﾡﾢ half-width hangul",
        "＂ｆｕｌｌ＂ ＇ｗｉｄｔｈ＇ ～",
    ],
    "quotes": [
        "“here’s a test”",
        "‘single’ ‚low‛ „double‟",
        "ʼokina ′prime″ «guillemets» ‹›",
    ],
    "line_breaks": [
        "a\r\nb\rc\nd",
        "a\u2028b\u2029c",
        "a\x85b",
        "a\r\r\nb",
    ],
    "terminal_escapes": [
        "\x1b[36;44mI'm blue\x1b[0m",
        "\x1b[1;٣mArabic digits\x1b[m",
        "\x1b[１mfull-width digit",
        "\x1b[!not an escape \x1b]0;title",
    ],
    "control_chars": [
        "a\x00b\x01c\x07d\x08e\x0bf\x0eg\x1bh\x7fi",
        "\u206aarabic\u206f \ufeffbom \ufff9annot\ufffb \ufffcobj",
        "joiners\u200c\u200d and marks\u200e\u200f\u202a\u202e stay",
        "zero\u200bwidth space stays",
    ],
    "whitespace": [
        "\t lots \n\x0b\x0c of\r\n  space  ",
        "a\u00a0b\u1680c\u2000d\u2003e\u200af",
        "a\u202fb\u205fc\u3000d",
        "a\u180eb mongolian vowel separator is no space",
        "&nbsp;a&NewLine;b&Tab;c&#x2003;d&#x85;e",
        "\u2028\u2029 \x85 ends \u3000",
        "",
        " \t\n ",
    ],
    "nfc": [
        "cafe\u0301 A\u030a \u212b \u2126",
        "\u1100\u1161\u11a8 jamo",
        "a\u0323\u0307 q\u0307\u0323",
        "\u0958 devanagari qa stays decomposed",
        "\u212a kelvin",
        "\u1e9b\u0323",
    ],
    "emoji": [
        "👩‍👩‍👧 family",
        "🇩🇪 🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f flags",
        "👍🏽 ❤️ ☺︎ 1️⃣",
    ],
    "lower": [
        "İstanbul",
        "ΟΔΟΣ ΟΔΟΣ. ΣΑΣ Σ",
        "ΑΣ\u0301 ΑΣ\u0301Β ʹΣ",
        "ΑΣʕ ΑΣ\U0001171e ΑΣ\U0001171eΒ",
        "ẞ ß ÀÉÎÕÜ",
        "ǅemal DŽ",
        "ΣΑΣ\u1c89 Ꞁ \u1c89",
        "ÅNGSTRÖM ǲ ᾼ ῼ",
        "ＡＢＣ",
    ],
    "scripts": [
        "東京タワー 서울 Москва القاهرة मुंबई กรุงเทพ",
        "Ελληνικά Ἀθῆναι",
    ],
}

HTML_UNESCAPE_CASES = [
    "&amp;amp; &lt3 &notit; &#x1F600; &#1; &#x80; &#0;",
    "no ampersand at all",
    "&#xD7FF;&#xE000;&#65536;",
]

FIX_TEXT_CASES = [
    "ＬＯＵＤ　ＮＯＩＳＥＳ",
    "P&EACUTE;REZ\r\n",
    "a\r\nb\rc\u2028d",
    "<b>&amp;</b>\n&amp;",
    "\x1b[31mred\x1b[0m\x00",
    "  keeps  spaces and Case\t",
    "cafe\u0301 &amp;amp;",
]


def rust_str(s: str) -> str:
    out = []
    for ch in s:
        cat = unicodedata.category(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 0x20 <= ord(ch) < 0x7F or (ord(ch) > 0x7F and cat[0] in "LNPS" and cat != "Lm"
                                         and unicodedata.normalize("NFC", ch) == ch
                                         and not 0x1100 <= ord(ch) <= 0x11FF
                                         and ch not in "\u3164\uffa0"):
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    return '"' + "".join(out) + '"'


def table(name, pairs):
    lines = [f"    const {name}: &[(&str, &str)] = &["]
    for text, want in pairs:
        lines.append(f"        ({rust_str(text)}, {rust_str(want)}),")
    lines.append("    ];")
    return "\n".join(lines)


def generated_block():
    out = [f"    // Expected strings produced by {VERSIONS}",
           "    // with scripts/clean/gen_clean_cases.py; none of these inputs is one that ftfy's mojibake",
           "    // repair would change.", ""]
    n = 0
    for group, texts in CLEAN_CASES.items():
        for t in texts:
            assert not is_mojibake_case(t), f"mojibake case: {t!r}"
        out += [table(f"CLEAN_{group.upper()}", [(t, open_clip_clean(t)) for t in texts]), ""]
        n += len(texts)
    for t in FIX_TEXT_CASES:
        assert not is_mojibake_case(t), f"mojibake case: {t!r}"
    out += [table("FIX_TEXT", [(t, ftfy.fix_text(t)) for t in FIX_TEXT_CASES]), ""]
    out += [table("HTML_UNESCAPE", [(t, html.unescape(t)) for t in HTML_UNESCAPE_CASES]), ""]
    n += len(FIX_TEXT_CASES) + len(HTML_UNESCAPE_CASES)
    upper = [k for k in HTML_ENTITIES if k[1:] not in html.entities.html5]
    out += ["    /// `len(html.entities.html5)`.",
            f"    const PY_HTML5_ENTITIES: usize = {len(html.entities.html5)};",
            "    /// ftfy's all-caps entities: `HTML_ENTITIES` keys that `html.entities.html5` lacks.",
            f"    const FTFY_UPPER_ENTITIES: usize = {len(upper)};",
            "    /// `len(ftfy.chardata.WIDTH_MAP)` (U+3000 and the U+FF01..U+FFEF that NFKC changes).",
            f"    const FTFY_WIDTH_MAP: usize = {len(WIDTH_MAP)};", ""]
    # fix_text cuts a line every 1_000_000 code points: the accent is not composed.
    long = "a" * 999_999 + "e\u0301"
    assert ftfy.fix_text(long) == long
    assert ftfy.fix_text(long[1:]) == long[1:-2] + "\u00e9"
    for group in CLEAN_CASES:
        out += ["    #[test]", f"    fn clean_{group}() {{",
                f"        check(CLEAN_{group.upper()}, open_clip_clean);", "    }", ""]
    print(f"{n} cases", file=sys.stderr)
    return "\n".join(out)


def main():
    path = sys.argv[1]
    src = open(path, encoding="utf-8").read()
    begin, end = "    // BEGIN GENERATED CASES\n", "    // END GENERATED CASES\n"
    head, rest = src.split(begin)
    _, tail = rest.split(end)
    open(path, "w", encoding="utf-8").write(head + begin + generated_block() + end + tail)


if __name__ == "__main__":
    main()
