#!/usr/bin/env python3
"""Make the text-tower reference fixtures of clip-vision: CLIP's tokenizer and text encoder.

As in make_fixtures.py (whose helpers this imports), every checkpoint is a small model made
from a config and random weights (perturb_), every input is fixed by a seed, and nothing is
downloaded. The tokenizer is the real one: CLIP's vocabulary from the
bpe_simple_vocab_16e6.txt.gz that open_clip ships.

    python3 scripts/make_text_fixtures.py                     # rewrite everything below
    python3 scripts/make_text_fixtures.py --only tokenizer    # only these fixtures

Run make_fixtures.py first: its make_demo writes the demo model (fixtures/models/demo) with the
tokenizer files (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json) and the demo's
text references; this script checks those files against the vocabulary it builds.

Fixtures:
    fixtures/tokenizer/bpe_simple_vocab_16e6.txt.gz   open_clip's file, byte for byte
    fixtures/tokenizer/corpus.json   a list of {"category", "text", "ids", "open_clip_ids",
                                     "open_clip_ids_no_mojibake_repair"}, one a
                                     line, 700+ texts (captions, accents in NFC and NFD, case, CJK,
                                     RTL, emoji, whitespace, HTML entities, contractions, quotes,
                                     special tokens, ligatures and widths, control characters,
                                     mojibake, symbols and code, long, empty, whitespace-only, and
                                     seeded mixes of them); ids: transformers' CLIPTokenizer with
                                     truncation to 77 (bos 49406 ... eos 49407, eos kept), no
                                     padding; open_clip_ids: open_clip's SimpleTokenizer, context
                                     77, the zero padding stripped; ..._no_mojibake_repair: the same
                                     with ftfy's fix_encoding off (what clip-text reproduces)
    fixtures/tokenizer/README.md     what is there, and on which texts the two disagree
    fixtures/models/NAME (each a save_pretrained directory with the reference below):
    text-gelu            CLIPTextModelWithProjection, exact GELU, head_dim 14, eps 1e-6; eos 499
                         (the largest id): pools at the first eos, and one sequence holds it twice
    text-legacy-eos      CLIPTextModelWithProjection, quick_gelu, 3 layers, eos_token_id 2 (a legacy
                         config): pools at the argmax of the ids (the end token 299); id 2 appears
                         early in some sequences
    text-model-noproj    CLIPTextModel (no projection: pooler_output and last_hidden_state only);
                         transformers 5 saves its tensors without the text_model. prefix
    clip-text-full       a whole CLIPModel (gelu text, quick_gelu vision), logit_scale 2.1; the
                         reference adds pixel_values [3, 3, 32, 32], image_embeds and
                         logits_per_image [3, B] of CLIPModel.forward on the padded batch
    openai-text          model.safetensors alone, OpenAI names, no config: token_embedding.weight,
                         positional_embedding, transformer.resblocks.{i}.*, ln_final.*,
                         text_projection [W, E] (x @ P), logit_scale [] and visual.* as
                         to_openai_names writes them; width 128 so heads = 2 by OpenAI's
                         width // 64; pools at the argmax of the ids; cross-checked against
                         open_clip; the reference adds pixel_values, image_embeds, logits_per_image
    open-clip/text_reference.{safetensors,json}   the text tower already in the open-clip
                         checkpoint through open_clip's own encode_text (argmax pooling, inputs
                         zero-padded to its context 8); the other open-clip files are untouched

Reference of each text fixture (NAME/reference.safetensors, f32; .json beside it):
    text_embeds [B, E]          when the model has a projection
    pooler_output [B, D]        the final_layer_norm output at the pooled position
    last_hidden_state.{i}       [len_i, D], after final_layer_norm
    each sequence run alone, unpadded; reference.json: input_ids (unpadded lists), pad_token_id,
    pool_positions, the versions and seed, and the largest deviation of a padded batch (with
    attention_mask, asserted < 1e-5) and of an f64 run of the same weights from these
"""

import argparse
import contextlib
import copy
import hashlib
import json
import math
import pathlib
import random
import shutil
import tempfile
import unicodedata
from collections import Counter, defaultdict

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import (AutoTokenizer, CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel,
                          CLIPTextModelWithProjection, CLIPTokenizer)

from make_fixtures import (FIXTURES, ROOT, build, clip_tokenizer, clip_vocabulary, openai_resblocks,
                           save_reference, to_openai_names)

MADE_BY = "scripts/make_text_fixtures.py"
CONTEXT = 77  # CLIP's context: the tokenizer truncates to it

# ---------------------------------------------------------------------------------------------
# The tokenizer corpus: fixed lists, their NFC/NFD forms, and combinations drawn with a seed.

ENGLISH = [
    "a photo of a cat", "a photo of a dog", "A dog running on the beach.",
    "Two people riding bicycles down a busy city street.", "a red car parked next to a fire hydrant",
    "An astronaut floating in space above the Earth", "a cup of coffee on a wooden table",
    "A rocket launching into a clear blue sky", "a close-up photo of a ladybug on a leaf",
    "The quick brown fox jumps over the lazy dog", "a bowl of fruit: apples, bananas and oranges",
    "a black and white photo of an old man", "a painting of a sunset over the mountains",
    "Kids playing football in the park after school", "a plate with a sandwich and french fries",
    "A herd of elephants walking across the savanna", "a snowy mountain reflected in a lake",
    "a blurry photo of a bird", "art of the ocean", "a drawing of a house with a garden",
    "A man in a suit talking on his phone", "an empty train station at night",
    "a cat sleeping on a keyboard", "a group of friends having dinner together",
    "a bright yellow school bus", "a sign that says STOP", "Satellite image of a river delta",
    "a microscope image of cells", "a vintage camera on a shelf", "a baby laughing",
    "THE BEST PIZZA IN TOWN", "Hello World", "hello world", "HeLLo WoRLD", "photo",
    "a", "I", "cat", "dogs", "a photo of the number 7",
]

SUBJECTS = ["a dog", "two cats", "an old woman", "a small boat", "the red bicycle", "a tall tree",
            "a child", "three birds", "a yellow taxi", "an empty chair"]
VERBS = ["sitting on", "next to", "under", "running through", "looking at", "in front of",
         "painted on", "floating above"]
PLACES = ["the grass", "a wooden bench", "the city at night", "a snowy field", "the kitchen table",
          "an old brick wall", "the river", "a crowded market"]

ACCENTS = [
    "café", "naïve", "résumé", "Ångström", "Crème brûlée", "jalapeño", "Zoë and Chloë",
    "São Paulo", "Tiếng Việt có dấu", "Zażółć gęślą jaźń", "Dvořák", "Ærøskøbing", "façade",
    "piñata", "Björk", "Île-de-France", "Œuvre complète", "Smörgåsbord", "Ça va? Très bien!",
    "ḁḃḉḋḗ", "ǅemal", "x̄ ȳ", "e\u0301\u0302\u0303 stacked marks", "\u0301 leading combining mark",
    "a\u0308\u0323", "Z\u0351\u0352\u0357a\u0358l\u035dg\u0360o\u0361", "o\u0338", "n\u0303",
    "Ä Ö Ü ä ö ü ß", "ā ē ī ō ū", "č ć đ š ž", "ő ű", "ğ ş ı İ", "Ħ ħ Ŋ ŋ", "ǖ ǘ ǚ ǜ",
    "e\u0301", "E\u0301COLE", "cafe\u0301", "nai\u0308ve",
]

CASE = [
    "ΟΔΟΣ", "ΣΊΣΥΦΟΣ", "Ὀδυσσεύς", "ΑΒΓΔΕ αβγδε", "Σ", "ΣΣ", "ΌΣΟΣ ΣΟΦΟΣ", "Привет, МИР",
    "ПРОВЕРКА регистра", "İSTANBUL", "İ", "ı", "DIŞ", "STRASSE Straße ẞ", "ǅ ǆ Ǆ", "ﬀ ＡＢ",
    "Ⅻ Ⅷ ⅻ", "ΐ ΰ", "ᾼ ᾳ", "\u2126 \u03a9", "\u212a K", "\u212b \u00c5", "ǰ", "ŉ", "ﬓ", "ԱԲԳ աբգ", "ႠႡ ⴀⴁ",
    "ᏣᎳᎩ", "𐐀𐐁 𐐨𐐩", "ⒶⒷⒸ", "ℌℑℜ", "𝐀𝐁𝐂 𝒶𝒷𝒸",
]

CJK = [
    "一只猫坐在窗台上", "我爱北京天安门", "你好，世界！", "中文：简体与繁體", "這是一張照片。",
    "猫と犬", "ひらがなとカタカナ", "東京タワーの写真", "すしを食べる", "コーヒーを一杯ください。",
    "ｶﾀｶﾅ", "ﾊﾟﾋﾟﾌﾟﾍﾟﾎﾟ", "ｺｰﾋｰ", "안녕하세요", "한국어 문장입니다.", "고양이 사진",
    "서울의 밤", "漢字かな交じり文", "「引用」と『二重引用』", "、。・ー〜", "日本語English混ざり",
    "Photo of 富士山 at dawn", "１２３ 全角数字", "中华人民共和国", "我々は", "〆切", "〇一二三",
    "𠮷野家", "𩸽", "鿰鿱", "ㄅㄆㄇㄈ", "ぁぃぅぇぉ", "ヴァイオリン", "ㄱㄴㄷ ㅏㅑㅓ",
]

RTL = [
    "مرحبا بالعالم", "مَرْحَبًا", "السَّلَامُ عَلَيْكُمْ", "صورة قطة", "اللغة العربية جميلة",
    "٠١٢٣٤٥٦٧٨٩", "العدد ١٢٣ والرقم 456", "שלום עולם", "שָׁלוֹם", "בְּרֵאשִׁית בָּרָא",
    "תמונה של חתול", "עברית and English", "فارسی زبان شیرینی است", "یک عکس از گربه",
    "اردو زبان", "\u200fRTL mark\u200f", "\u200eLTR mark\u200e", "a \u202eevil\u202c b",
    "ﷺ ﷽", "ﻻ ﻷ", "ـــ", "\u2067عربي\u2069 isolate", "מִלָּה", "قُرْآن",
]

EMOJI = [
    "😀", "😀😃😄", "I love pizza 🍕", "cat🐱dog🐶", "👍", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👨‍👩‍👧‍👦",
    "🧑🏿‍🚀", "👩‍💻 coding", "🏳️‍🌈", "🏴‍☠️", "🇺🇸", "🇯🇵🇫🇷🇩🇪", "🇺", "1️⃣ 2️⃣ #️⃣ *️⃣", "1⃣",
    "❤️ ❤", "☺️☺", "✈️ ✈", "🤷‍♀️", "🤷🏽‍♂️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🫠🫶", "🔥🔥🔥", "🎉 party!", "©️ ®️ ™️",
    "😀 \u200d", "\u200d😀", "🙂🙃", "⌚⌛", "🀄", "🃏",
]

WHITESPACE = [
    "a  b", "a     b", "a\tb", "a\t\tb", "a\nb", "a\n\nb", "a\r\nb", "a\rb", "  leading", "trailing  ",
    "  both  ", "a\u00a0b", "a\u00a0\u00a0b", "a\u2003b", "a\u2002b", "a\u2009b", "a\u3000b",
    "a\u200bb", "a\u2028b", "a\u2029b", "a\u1680b", "a\u202fb", "a\u205fb", "a\x85b", "a\x0bb",
    "a\x0cb", "a\x1cb", "a\x1fb", "a \t\n\r\u00a0\u3000 b", "word\u200bword\u200bword",
    "two\u00a0words", "tab\tseparated\tvalues", "line one\nline two\nline three",
    "windows\r\nline\r\nendings", "\u2060word joiner\u2060", "a\u180eb",
]

WHITESPACE_ONLY = [
    " ", "   ", "\t", "\n", "\r\n", "\n\n\n", " \t\n ", "\u00a0", "\u2003", "\u3000", "\u200b",
    "\u2028", "\x85", "\x0b\x0c", "\u00a0 \u00a0", "\u200b\u200b", "\ufeff", " " * 100,
]

HTML = [
    "fish &amp; chips", "a &lt; b &gt; c", "it&#39;s", "it&#x27;s", "&quot;quoted&quot;",
    "non&nbsp;breaking", "&amp;amp;", "&amp;lt;tag&amp;gt;", "&amp;amp;amp;", "AT&T", "AT&amp;T",
    "&copy 2024", "&lt3", "&amp", "&ampx", "&eacute;t&eacute;", "caf&#233;", "&#x1F600;",
    "&#128512;", "&unknown;", "&#0;", "&#65;&#66;&#67;", "&hellip;", "&mdash; dash",
    "<b>bold</b>", "&lt;b&gt;bold&lt;/b&gt;", "R&amp;D", "Q&amp;A session", "&#x2019;", "&gt;&gt;&gt;",
    "&NotARealEntity;", "&aacute", "&ndash&ndash", "&#39", "& amp;",
]

CONTRACTIONS = [
    "it's", "don't", "you're", "we've", "I'm", "we'll", "he'd", "IT'S", "DON'T", "YOU'RE", "WE'VE",
    "I'M", "WE'LL", "HE'D", "It'S", "it’s", "don’t", "you’re", "I’m", "we’ll", "he’d", "we’ve",
    "rock 'n' roll", "'s", "'t", "''s", "'sss", "o'clock", "the dog's bone", "the dogs' bones",
    "y'all'd've", "can't won't shouldn't", "'tis", "ma'am", "'ll 'd 're 've 'm", "’s ’t",
]

QUOTES = [
    "“quoted”", "‘single’", "«guillemets»", "‹single guillemets›", "„German“", "‚low single‘",
    "「corner」", "\"straight\"", "'straight'", "“nested ‘quotes’ inside”", "»reversed«", "〝〞",
    "＂fullwidth＂", "❝ornament❞", "he said, “hi.”", "″ ′ ‴", "`backtick`", "´acute´",
]

SPECIAL = [
    "<|endoftext|>", "<|startoftext|>", "a<|endoftext|>b", "a <|endoftext|> b",
    "<|startoftext|> hello <|endoftext|>", "<|ENDOFTEXT|>", "<|EndOfText|>", "<|STARTOFTEXT|>",
    "<|endoftext|><|endoftext|>", "<|endoftext|>" * 40, "<end_of_text>", "<start_of_text>",
    "<END_OF_TEXT>", "a<end_of_text>b", "<| endoftext |>", "<|endoftext", "endoftext|>",
    "<|endoftext|>x", "x<|startoftext|>", "</w>", "a</w>b", "cat</w>", "<|unk|>", "<s> </s> <pad>",
    "[CLS] [SEP] [MASK]", "<|im_start|>",
]

WIDTH = [
    "ﬁsh", "ﬂour", "ﬀ ﬃ ﬄ", "ﬅ ﬆ", "oﬃce", "ﬁ", "Ĳ ĳ", "ǈ", "ＡＢＣ１２３！", "ｈｅｌｌｏ　ｗｏｒｌｄ",
    "Ｈｅｌｌｏ，Ｗｏｒｌｄ！", "ｶﾞｷﾞｸﾞ", "ｱｲｳｴｵ", "ﾟﾞ", "①②③", "⑴⑵⑶", "½ ¼ ¾", "x² y³ z⁴",
    "H₂O", "™ ℠ ℡", "㍿ ㌀ ㎏", "Ⓐ", "ｱ", "ﹰ ﹱ", "︵ ︶", "℃ ℉", "\u00b5 \u03bc", "\u212b",
]

CONTROL = [
    "\x00", "a\x00b", "\x01\x02\x03", "a\x07b", "a\x08b", "a\x1bb", "\x1b[31mred\x1b[0m", "a\x7fb",
    "a\x80b", "a\x85b", "a\x8db", "a\x9fb", "\x80\x81\x82\x83", "co\u00adop", "\u00ad", "\ufeffBOM",
    "a\ufeffb", "\u200ca\u200db", "a\ufffdb", "\ufffd", "a\u2066b\u2069c", "\ufff9a\ufffbb",
    "a\U000e0041b", "\uf8ff private use", "\U000f0000", "a\x0eb\x0fc", "a\x1a\x1bb",
]

MOJIBAKE = [
    "cafÃ©", "Ã¼ber", "Ã©tÃ©", "donâ€™t", "â€œquotedâ€\x9d", "â€“ dash", "Ã¢â‚¬â„¢", "æ—¥æœ¬",
    "ÐŸÑ€Ð¸Ð²ÐµÑ‚", "Ã\x83Â©", "naÃ¯ve", "SÃ£o Paulo", "Ã…ngstrÃ¶m", "Ã±", "ÃƒÂ©",
    "l’Ã©tÃ©", "Ã¡Ã©Ã\xadÃ³Ãº", "â˜ƒ snowman", "ðŸ˜€", "Ã\xa0 la carte",
]

SYMBOLS = [
    "1234567890", "3.14159", "1,000,000", "0.001", "-42", "1e10", "$100", "€50", "£20", "¥1000",
    "100%", "2+2=4", "x^2 + y^2 = z^2", "∑∫√∞≈≠≤≥", "∀x∃y", "αβγ δεζ", "→←↑↓⇒⇔", "25°C",
    "№ 5", "§ 3 ¶ 2", "© ® ™", "!!!", "???", "...", "!?!?", "---", "___", "***", "((()))",
    "[[]]", "{{}}", "@#$%^&*", "~`|\\", "...!!!???", "a.b.c", "e.g., i.e.,", "3:45 pm",
    "2024-01-15", "12/25/2023", "+1 (555) 123-4567", "https://example.com/path?q=1&x=2#frag",
    "http://www.example.org", "www.clip-vision.dev/docs", "user@example.com", "#hashtag @mention",
    "def f(x): return x ** 2", "fn main() { println!(\"hi\"); }", "<div class=\"a\">x</div>",
    "snake_case camelCase PascalCase kebab-case", "C:\\Users\\me\\file.txt", "/usr/bin/env python3",
    "if (a && b || !c) { x += 1; }", "SELECT * FROM t WHERE id = 1;", "a->b::c", "i++ --j",
    "0x1F 0b1010 0o17", "ISBN 978-3-16-148410-0", "v1.2.3-rc.1", "MP3 H264 4K 1080p",
    "123abc456", "abc123def", "½½", "٣", "१२३", "๑๒๓",
]

LONG_WORDS = ["the", "photo", "of", "a", "dog", "cat", "running", "beautiful", "mountain", "river",
              "city", "night", "light", "old", "small", "red", "blue", "green", "happy", "people",
              "street", "water", "sky", "tree", "house", "car", "window", "table", "food", "music"]


def _nfc_nfd(strings):
    out = []
    for s in strings:
        for form in ("NFC", "NFD"):
            t = unicodedata.normalize(form, s)
            if t not in out:
                out.append(t)
    return out


def corpus(seed: int = 2030):
    """[(category, text)], in a fixed order, texts unique."""
    rng = random.Random(seed)
    cats = []
    cats.append(("english", ENGLISH + [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(PLACES)}"
                                       for _ in range(30)]))
    cats.append(("accents", _nfc_nfd(ACCENTS)))
    cats.append(("case", _nfc_nfd(CASE)))
    korean = ["안녕하세요", "한국어 문장입니다.", "고양이 사진"]
    cats.append(("cjk", CJK + [unicodedata.normalize("NFD", k) for k in korean]))
    cats.append(("rtl", _nfc_nfd(RTL)))
    cats.append(("emoji", EMOJI))
    cats.append(("whitespace", WHITESPACE))
    cats.append(("html", HTML))
    cats.append(("contractions", CONTRACTIONS))
    cats.append(("quotes", QUOTES))
    cats.append(("special_tokens", SPECIAL))
    cats.append(("ligatures_width", WIDTH))
    cats.append(("control", CONTROL))
    cats.append(("mojibake", MOJIBAKE))
    cats.append(("symbols_code", SYMBOLS))
    long = [
        " ".join(rng.choice(LONG_WORDS) for _ in range(300)),
        " ".join(rng.choice(LONG_WORDS) for _ in range(600)) + ".",
        ". ".join(" ".join(rng.choice(LONG_WORDS) for _ in range(12)).capitalize() for _ in range(40)),
        "a" * 1000, "a " * 300, "!" * 500, "ab" * 400, "😀" * 100, "あ" * 200, "supercalifragilistic" * 20,
        "1" * 200, "\u00e9" * 150, "e\u0301" * 150, "<|endoftext|> " * 100,
    ]
    # Around the context: k one-token words give k + 2 ids before truncation to 77.
    long += [" ".join(["cat"] * k) for k in (74, 75, 76, 77, 78)]
    cats.append(("long", long))
    cats.append(("empty", [""]))
    cats.append(("whitespace_only", WHITESPACE_ONLY))

    pool = [t for name, texts in cats if name not in ("long", "empty") for t in texts]
    seps = [" ", "", "  ", "\n", "\t", " - ", "\u00a0"]
    mixed = []
    while len(mixed) < 120:
        parts = [rng.choice(pool) for _ in range(rng.randint(2, 4))]
        mixed.append(rng.choice(seps).join(parts))
    cats.append(("mixed", mixed))

    out, seen = [], set()
    for name, texts in cats:
        for t in texts:
            if t not in seen:
                seen.add(t)
                out.append((name, t))
    return out




# ---------------------------------------------------------------------------------------------
# Tokenizer fixtures


def open_clip_ids(oc_tokenizer, text: str) -> list:
    """open_clip's ids of one text, the zero padding stripped."""
    oc = oc_tokenizer([text], context_length=CONTEXT)[0].tolist()
    while oc and oc[-1] == 0:
        oc.pop()
    return oc


@contextlib.contextmanager
def ftfy_without_mojibake_repair():
    """open_clip's cleaning with ftfy's `fix_encoding` off: every fixer but the mojibake repair,
    which is what clip-text's open_clip mode reproduces."""
    import ftfy
    original = ftfy.fix_text
    ftfy.fix_text = lambda text, **kw: original(text, fix_encoding=False, **kw)
    try:
        yield
    finally:
        ftfy.fix_text = original


def make_tokenizer() -> None:
    """The gz copy, corpus.json and README.md in fixtures/tokenizer."""
    import ftfy
    import open_clip
    import regex
    import tokenizers
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    out_dir = ROOT / "fixtures" / "tokenizer"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    gz = out_dir / "bpe_simple_vocab_16e6.txt.gz"
    shutil.copyfile(default_bpe(), gz)
    assert gz.read_bytes() == pathlib.Path(default_bpe()).read_bytes()

    demo = FIXTURES / "demo"
    files = ["vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"]
    missing = [f for f in files if not (demo / f).exists()]
    if missing:
        raise SystemExit(f"{demo} lacks {missing}: run scripts/make_fixtures.py --only demo first")
    tokens, merges = clip_vocabulary()
    vocab = json.loads((demo / "vocab.json").read_text(encoding="utf-8"))
    assert vocab == {t: i for i, t in enumerate(tokens)}, "demo/vocab.json is not CLIP's vocabulary"
    lines = (demo / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2" and lines[-1] == ""
    assert [tuple(line.split(" ")) for line in lines[1:-1]] == merges, "demo/merges.txt is not CLIP's merges"

    # (a) from vocab.json + merges.txt alone, (b) from tokenizer.json, (c) the tokenizers library
    # itself on tokenizer.json (as the Rust crate reads it), (d) built in memory.
    with tempfile.TemporaryDirectory() as tmp:
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(demo / f, tmp)
        from_files = CLIPTokenizer.from_pretrained(tmp)
    from_json = AutoTokenizer.from_pretrained(demo)
    assert type(from_json) is CLIPTokenizer and len(from_files.get_vocab()) == len(from_json.get_vocab()) == 49408
    raw = tokenizers.Tokenizer.from_file(str(demo / "tokenizer.json"))
    raw.enable_truncation(CONTEXT)
    built = clip_tokenizer()
    hf = lambda tok, text: tok(text, truncation=True, max_length=CONTEXT)["input_ids"]

    oc_tokenizer = SimpleTokenizer()
    rows, texts, differ, others = [], Counter(), Counter(), []
    steps = {step: Counter() for step in CLEANING_STEPS + ["none"]}
    examples = defaultdict(list)
    for category, text in corpus():
        ids = hf(from_json, text)
        for name, other in (("vocab.json + merges.txt", hf(from_files, text)), ("in memory", hf(built, text)),
                            ("tokenizers", raw.encode(text).ids)):
            assert other == ids, f"{name} disagrees with tokenizer.json on {text!r}: {other} vs {ids}"
        assert ids[0] == 49406 and ids[-1] == 49407 and 2 <= len(ids) <= CONTEXT, (text, ids)
        oc = open_clip_ids(oc_tokenizer, text)
        with ftfy_without_mojibake_repair():
            oc_plain = open_clip_ids(oc_tokenizer, text)
        rows.append({"category": category, "text": text, "ids": ids, "open_clip_ids": oc,
                     "open_clip_ids_no_mojibake_repair": oc_plain})
        texts[category] += 1
        if oc != ids:
            differ[category] += 1
            step = cleaning_step(text, oc, lambda t: hf(from_json, t))
            steps[step][category] += 1
            if len(examples[category]) < 2:
                examples[category].append(text)
            if step == "none":
                others.append((category, text))
    (out_dir / "corpus.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")

    specials = ("<|startoftext|>", "<|endoftext|>", "<start_of_text>", "<end_of_text>")
    assert all(any(sp in t.lower() for sp in specials) for _, t in others), "the README's account is wrong"
    n, d = len(rows), sum(differ.values())
    explained = d - sum(steps["none"].values())
    print(f"tokenizer: {n} texts in {len(texts)} categories; the four transformers/tokenizers builds agree "
          f"on all; open_clip differs on {d} ({explained} explained by its text cleaning)")
    for c in texts:
        if differ[c]:
            by = ", ".join(f"{steps[st][c]} {st}" for st in steps if steps[st][c])
            print(f"    {c}: {differ[c]}/{texts[c]} ({by}); e.g. " + ", ".join(repr(t[:40]) for t in examples[c]))
    header = " | ".join(CLEANING_STEPS + ["none of these"])
    table = "\n".join(f"| {c} | {texts[c]} | {differ[c]} | " + " | ".join(str(steps[st][c]) for st in steps) + " |"
                      for c in texts)
    listed = "\n".join(f"- {c}: {visible(t, 80)}" for c, t in others)
    shown = "\n".join(f"- {c}: " + ", ".join(visible(t, 60) for t in examples[c]) for c in texts if differ[c])
    sha = hashlib.sha256(gz.read_bytes()).hexdigest()
    (out_dir / "README.md").write_text(f"""# CLIP tokenizer fixtures

Made by `scripts/make_text_fixtures.py`; do not edit by hand.

- `bpe_simple_vocab_16e6.txt.gz`: CLIP's BPE merges, byte for byte the file that
  open_clip_torch {open_clip.__version__} ships (the one of OpenAI's CLIP repository);
  sha256 `{sha}`.
- The vocabulary built from it as OpenAI and open_clip build it (the 256 byte characters of
  `bytes_to_unicode`, the same with `</w>`, the merges of lines 1..48894 joined,
  `<|startoftext|>` = 49406, `<|endoftext|>` = 49407: 49408 tokens) lives in
  `fixtures/models/demo/` only: `vocab.json`, `merges.txt` (first line `#version: 0.2`), and
  transformers' `tokenizer.json` + `tokenizer_config.json` (made by `make_fixtures.py`).
- `corpus.json`: {n} texts in {len(texts)} categories, one object a line:
  `ids` = transformers {transformers.__version__} `CLIPTokenizer` (tokenizers {tokenizers.__version__})
  with `truncation=True, max_length=77`: `<|startoftext|>` first, `<|endoftext|>` last (kept
  when truncated), no padding. The tokenizer from vocab.json + merges.txt alone, the one from
  tokenizer.json, the tokenizers library on tokenizer.json (truncation 77) and the one built
  in memory give the same ids on every text.
  `open_clip_ids` = open_clip's `SimpleTokenizer()` (ftfy {ftfy.__version__}, regex
  {regex.__version__}) on `[text]` with context 77, the zero padding stripped.

## Where open_clip differs

`open_clip_ids` differ from `ids` on {d} of {n} texts. open_clip cleans the text first
(`ftfy.fix_text`, which also unescapes HTML in a text without `<`, `html.unescape` twice and
strip, whitespace runs by `str.split`, Python's `str.lower`) where transformers does NFC, `\\s+`
to one space and a per-character lower case (no final sigma);
a column below counts the texts on which transformers, given the text after that much of
open_clip's cleaning, gives open_clip's ids ({explained} in all). The rest are special tokens:
transformers maps the literal `<|startoftext|>` / `<|endoftext|>` in a text to 49406 / 49407,
open_clip splits them into pieces (its own specials are named `<start_of_text>` /
`<end_of_text>`, which it maps to 49406 / 49407 in any case).

| category | texts | differ | {header} |
|---|---|---|{"---|" * (len(CLEANING_STEPS) + 1)}
{table}

Examples of differing texts:

{shown}

Not explained by the cleaning:

{listed if listed else "- none"}
""")


def visible(text: str, limit: int) -> str:
    """TEXT (cut to LIMIT characters) as a Markdown code span, invisible characters as \\uXXXX."""
    shown = "".join(c if c.isprintable() or c == " " else f"\\u{ord(c):04x}" for c in text[:limit])
    return f"`` {shown}{'...' if len(text) > limit else ''} ``"


CLEANING_STEPS = ["ftfy", "+ html.unescape", "+ whitespace", "+ lower"]


def cleaning_step(text: str, want: list, encode) -> str:
    """The first prefix of open_clip's cleaning after which `encode` gives `want`."""
    import html

    import ftfy

    fixed = ftfy.fix_text(text)
    unescaped = html.unescape(html.unescape(fixed)).strip()
    spaced = " ".join(unescaped.split()).strip()
    for step, t in zip(CLEANING_STEPS, (fixed, unescaped, spaced, spaced.lower())):
        if encode(t) == want:
            return step
    return "none"


# ---------------------------------------------------------------------------------------------
# Text towers


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def text_outputs(model, input_ids, attention_mask=None) -> dict:
    """transformers' text outputs of any of the three model classes."""
    kw = dict(input_ids=input_ids, attention_mask=attention_mask)
    with torch.inference_mode():
        if isinstance(model, CLIPTextModel):
            out = model(**kw)
            return {"pooler_output": out.pooler_output, "last_hidden_state": out.last_hidden_state}
        if isinstance(model, CLIPTextModelWithProjection):
            out, inner = model(**kw), model.text_model(**kw)
            return {"text_embeds": out.text_embeds, "pooler_output": inner.pooler_output,
                    "last_hidden_state": out.last_hidden_state}
        inner = model.text_model(**kw)
        feats = model.get_text_features(**kw)
        feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
        return {"text_embeds": feats, "pooler_output": inner.pooler_output,
                "last_hidden_state": inner.last_hidden_state}


def padded(seqs, pad_id: int, length: int | None = None):
    """input_ids [B, length] padded with pad_id, and attention_mask."""
    length = length or max(map(len, seqs))
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), length, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def stack_alone(alone: list) -> dict:
    tensors = {k: torch.cat([a[k] for a in alone]) for k in ("text_embeds", "pooler_output") if k in alone[0]}
    for i, a in enumerate(alone):
        tensors[f"last_hidden_state.{i}"] = a["last_hidden_state"][0]
    return tensors


def deviations(tensors: dict, other: dict, seqs) -> dict:
    """Largest |difference| per output; other's last_hidden_state may be a padded batch."""
    dev = {k: max_abs(tensors[k], other[k]) for k in ("text_embeds", "pooler_output") if k in tensors}
    lhs = other["last_hidden_state"] if "last_hidden_state" in other else None
    dev["last_hidden_state"] = max(
        max_abs(tensors[f"last_hidden_state.{i}"],
                lhs[i, :len(s)] if lhs is not None else other[f"last_hidden_state.{i}"])
        for i, s in enumerate(seqs))
    return dev


def text_reference(model, seqs, pad_id: int, rule):
    """Each sequence alone; asserted against a padded batch and the pooling rule (the position
    rule(ids) of each sequence); the f64 deviation."""
    tensors = stack_alone([text_outputs(model, torch.tensor([s])) for s in seqs])
    batch = text_outputs(model, *padded(seqs, pad_id))
    dev_padded = deviations(tensors, batch, seqs)
    assert max(dev_padded.values()) < 1e-5, f"padded batch differs from one at a time: {dev_padded}"
    positions = []
    for i, s in enumerate(seqs):
        hits = (tensors[f"last_hidden_state.{i}"] == tensors["pooler_output"][i]).all(-1).nonzero().flatten()
        positions.append(int(hits[0]))
        assert int(hits[0]) == rule(s), f"pooled at {hits.tolist()}, the rule says {rule(s)}: {s}"
    model64 = copy.deepcopy(model).double()
    tensors64 = stack_alone([text_outputs(model64, torch.tensor([s])) for s in seqs])
    meta = {
        "input_ids": seqs,
        "pad_token_id": pad_id,
        "pool_positions": positions,
        "max_abs_reference": {k: float(v.abs().max()) for k, v in tensors.items()
                              if not k.startswith("last_hidden_state.")},
        "padded_batch_vs_alone_max_abs": dev_padded,
        "torch_f32_vs_f64_max_abs": deviations(tensors, tensors64, seqs),
    }
    meta["max_abs_reference"]["last_hidden_state"] = max(float(v.abs().max()) for k, v in tensors.items()
                                                        if k.startswith("last_hidden_state."))
    return tensors, meta


def draw(gen: torch.Generator, n: int, low: int, high: int) -> list:
    """n ids in [low, high)."""
    return torch.randint(low, high, (n,), generator=gen).tolist()


def first_eos(eos: int):
    return lambda s: s.index(eos)


def argmax_id(s):
    return s.index(max(s))


def fresh(name: str) -> pathlib.Path:
    out_dir = FIXTURES / name
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    return out_dir


def report(name: str, meta: dict) -> None:
    f64 = meta["torch_f32_vs_f64_max_abs"]
    print(f"{name}: {len(meta['input_ids'])} sequences (lengths {[len(s) for s in meta['input_ids']]}), "
          f"pooled at {meta['pool_positions']}, f32 vs f64 " + ", ".join(f"{k} {v:.1e}" for k, v in f64.items()))


def make_text(name: str, cls, cfg: dict, seqs_of, rule, seed: int, note: str) -> None:
    """A CLIPTextModel(WithProjection) fixture: save_pretrained + the reference."""
    out_dir = fresh(name)
    model, gen = build(CLIPTextConfig(**cfg), seed, cls=cls)
    model.save_pretrained(out_dir)
    seqs = seqs_of(gen)
    tensors, meta = text_reference(model, seqs, cfg["pad_token_id"], rule)
    save_reference(out_dir, tensors, {"made_by": MADE_BY, "seed": seed, "class": cls.__name__,
                                      "pooling": note, "attn_implementation": model.config._attn_implementation,
                                      **meta})
    report(name, meta)


def make_text_gelu(seed: int) -> None:
    cfg = dict(vocab_size=500, hidden_size=42, intermediate_size=70, num_hidden_layers=2, num_attention_heads=3,
               layer_norm_eps=1e-6, max_position_embeddings=20, projection_dim=24, hidden_act="gelu",
               bos_token_id=498, eos_token_id=499, pad_token_id=0)
    bos, eos = 498, 499
    seqs = lambda g: [
        [bos, eos],
        [bos] + draw(g, 3, 1, bos) + [eos],
        [bos] + draw(g, 2, 1, bos) + [eos] + draw(g, 2, 1, bos) + [eos],  # eos twice: the first pools
        [bos] + draw(g, 3, 1, bos) + [0] + draw(g, 3, 1, bos) + [eos],  # the pad id as a real token
        [bos] + draw(g, 11, 1, bos) + [eos],
        [bos] + draw(g, 18, 1, bos) + [eos],  # the whole context
    ]
    make_text("text-gelu", CLIPTextModelWithProjection, cfg, seqs, first_eos(eos), seed,
              "first position of eos_token_id 499")


def make_text_legacy_eos(seed: int) -> None:
    cfg = dict(vocab_size=300, hidden_size=30, intermediate_size=50, num_hidden_layers=3, num_attention_heads=2,
               layer_norm_eps=1e-5, max_position_embeddings=16, projection_dim=12, hidden_act="quick_gelu",
               bos_token_id=298, eos_token_id=2, pad_token_id=1)
    bos, end = 298, 299
    seqs = lambda g: [
        [bos, end],
        [bos, 2] + draw(g, 3, 3, bos) + [end],  # id 2 (the config's eos) early: first-eos would pool at 1
        [bos, 1] + draw(g, 1, 3, bos) + [end],  # the pad id as a real token
        [bos] + draw(g, 5, 3, bos) + [2, 2] + draw(g, 1, 3, bos) + [end],
        [bos] + draw(g, 14, 3, bos) + [end],  # the whole context
    ]
    make_text("text-legacy-eos", CLIPTextModelWithProjection, cfg, seqs, argmax_id, seed,
              "eos_token_id == 2 (legacy config): argmax of the ids (the end token 299)")


def make_text_noproj(seed: int) -> None:
    cfg = dict(vocab_size=100, hidden_size=24, intermediate_size=56, num_hidden_layers=1, num_attention_heads=4,
               max_position_embeddings=12, hidden_act="gelu", bos_token_id=98, eos_token_id=99, pad_token_id=0)
    bos, eos = 98, 99
    seqs = lambda g: [
        [bos, eos],
        [bos] + draw(g, 1, 1, bos) + [eos],
        [bos] + draw(g, 4, 1, bos) + [eos],
        [bos] + draw(g, 2, 1, bos) + [eos] + draw(g, 2, 1, bos) + [eos],
        [bos] + draw(g, 10, 1, bos) + [eos],  # the whole context
    ]
    make_text("text-model-noproj", CLIPTextModel, cfg, seqs, first_eos(eos), seed,
              "first position of eos_token_id 99")


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def image_features(model, pixels):
    with torch.inference_mode():
        out = model.get_image_features(pixel_values=pixels)
    return out.pooler_output if hasattr(out, "pooler_output") else out


def clip_forward(model, seqs, pad_id, pixels):
    """image_embeds and logits_per_image of CLIPModel.forward on the padded batch."""
    ids, mask = padded(seqs, pad_id)
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
    return image_features(model, pixels), out.logits_per_image


def add_clip_reference(model, seqs, pad_id, pixels, tensors, meta) -> None:
    """pixel_values, image_embeds, logits_per_image (checked against the text_embeds), f64."""
    image_embeds, logits = clip_forward(model, seqs, pad_id, pixels)
    scale = model.logit_scale.detach().exp()
    own = scale * unit(image_embeds) @ unit(tensors["text_embeds"]).T
    assert torch.allclose(logits, own, atol=1e-6 * float(scale)), max_abs(logits, own)
    image64, logits64 = clip_forward(copy.deepcopy(model).double(), seqs, pad_id, pixels.double())
    tensors.update({"pixel_values": pixels, "image_embeds": image_embeds, "logits_per_image": logits})
    meta["logit_scale"] = model.logit_scale.item()
    meta["max_abs_reference"].update(image_embeds=float(image_embeds.abs().max()),
                                     logits_per_image=float(logits.abs().max()))
    meta["torch_f32_vs_f64_max_abs"].update(image_embeds=max_abs(image_embeds, image64),
                                            logits_per_image=max_abs(logits, logits64))


def make_clip_text_full(seed: int) -> None:
    out_dir = fresh("clip-text-full")
    text = dict(vocab_size=400, hidden_size=36, intermediate_size=60, num_hidden_layers=2, num_attention_heads=3,
                layer_norm_eps=1e-6, max_position_embeddings=18, hidden_act="gelu", bos_token_id=398,
                eos_token_id=399, pad_token_id=1, projection_dim=20)
    vision = dict(image_size=32, patch_size=8, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, hidden_act="quick_gelu", projection_dim=20)
    model, gen = build(CLIPConfig(text_config=text, vision_config=vision, projection_dim=20), seed, cls=CLIPModel)
    with torch.no_grad():
        model.logit_scale.fill_(2.1)
    model.save_pretrained(out_dir)
    bos, eos = 398, 399
    seqs = [
        [bos, eos],
        [bos] + draw(gen, 3, 2, bos) + [eos],
        [bos] + draw(gen, 2, 2, bos) + [eos] + draw(gen, 1, 2, bos) + [eos],
        [bos] + draw(gen, 8, 2, bos) + [eos],
        [bos] + draw(gen, 16, 2, bos) + [eos],  # the whole context
    ]
    tensors, meta = text_reference(model, seqs, 1, first_eos(eos))
    pixels = torch.randn(3, 3, 32, 32, generator=gen)
    add_clip_reference(model, seqs, 1, pixels, tensors, meta)
    save_reference(out_dir, tensors, {"made_by": MADE_BY, "seed": seed, "class": "CLIPModel",
                                      "pooling": "first position of eos_token_id 399", **meta})
    report("clip-text-full", meta)


def to_openai_text_names(sd: dict) -> dict:
    """transformers' text tensors (and logit_scale) renamed as OpenAI CLIP / open_clip name them."""
    t = "text_model."
    out = {"token_embedding.weight": sd[t + "embeddings.token_embedding.weight"],
           "positional_embedding": sd[t + "embeddings.position_embedding.weight"],
           **openai_resblocks(sd, t, ""),
           "ln_final.weight": sd[t + "final_layer_norm.weight"],
           "ln_final.bias": sd[t + "final_layer_norm.bias"],
           "text_projection": sd["text_projection.weight"].t(),
           "logit_scale": sd["logit_scale"]}
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def make_openai_text(seed: int) -> None:
    """OpenAI names in a lone model.safetensors: what a loader infers from the tensors alone
    (width, heads = width // 64, layers, context, vocabulary) must reproduce transformers."""
    import open_clip

    out_dir = fresh("openai-text")
    width, vocab, ctx, embed = 128, 400, 16, 24
    text = dict(vocab_size=vocab, hidden_size=width, intermediate_size=4 * width, num_hidden_layers=2,
                num_attention_heads=width // 64, layer_norm_eps=1e-5, max_position_embeddings=ctx,
                hidden_act="quick_gelu", bos_token_id=398, eos_token_id=399, pad_token_id=0, projection_dim=embed)
    vision = dict(image_size=32, patch_size=8, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=1, layer_norm_eps=1e-5, hidden_act="quick_gelu", projection_dim=embed)
    model, gen = build(CLIPConfig(text_config=text, vision_config=vision, projection_dim=embed), seed, cls=CLIPModel)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))
    sd = model.state_dict()
    tensors = {**to_openai_names(sd), **to_openai_text_names(sd)}
    save_file(tensors, out_dir / "model.safetensors")
    bos, end = 398, 399
    seqs = [
        [bos, end],
        [bos] + draw(gen, 4, 1, bos) + [end],
        [bos] + draw(gen, 9, 1, bos) + [end],
        [bos] + draw(gen, 1, 1, bos) + [end],
        [bos] + draw(gen, 14, 1, bos) + [end],  # the whole context
    ]
    ref, meta = text_reference(model, seqs, 0, argmax_id)
    pixels = torch.randn(2, 3, 32, 32, generator=gen)
    add_clip_reference(model, seqs, 0, pixels, ref, meta)

    oc = open_clip.CLIP(embed_dim=embed, quick_gelu=True,
                        vision_cfg=dict(image_size=32, layers=2, width=64, head_width=64, mlp_ratio=4, patch_size=8),
                        text_cfg=dict(context_length=ctx, vocab_size=vocab, width=width, heads=width // 64, layers=2,
                                      mlp_ratio=4)).eval()
    oc.load_state_dict(tensors, strict=True)
    ids, _ = padded(seqs, 0, length=ctx)  # OpenAI's tokenize: zeros to the context
    with torch.inference_mode():
        oc_text, oc_image = oc.encode_text(ids), oc.encode_image(pixels)
        oc_logits, _ = oc.get_logits(pixels, ids)
    diffs = {"text_embeds": max_abs(oc_text, ref["text_embeds"]), "image_embeds": max_abs(oc_image, ref["image_embeds"]),
             "logits_per_image": max_abs(oc_logits, ref["logits_per_image"])}
    # logits are cosines times exp(logit_scale) = 100: compare them on the cosine scale.
    bounds = {"text_embeds": 1e-5, "image_embeds": 1e-5, "logits_per_image": 1e-6 * 100.0}
    assert all(diffs[k] < bounds[k] for k in diffs), f"open_clip disagrees with transformers: {diffs}"
    save_reference(out_dir, ref, {"made_by": MADE_BY, "seed": seed, "naming": "OpenAI (no config)",
                                  "activation": "quick_gelu", "num_attention_heads": width // 64,
                                  "context_length": ctx, "pooling": "argmax of the ids (OpenAI's rule)",
                                  "open_clip_version": open_clip.__version__,
                                  "open_clip_vs_transformers_max_abs": diffs, **meta})
    report("openai-text", meta)
    print("    open_clip agrees: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))


def make_open_clip_text(seed: int) -> None:
    """The text tower already in fixtures/models/open-clip through open_clip itself; written
    beside the existing files (text_reference.*), which stay as make_fixtures.py made them."""
    import open_clip

    out_dir = FIXTURES / "open-clip"
    cfg = json.loads((out_dir / "open_clip_config.json").read_text())["model_cfg"]
    weights = load_file(out_dir / "open_clip_model.safetensors")
    text_keys = sorted(k for k in weights if not k.startswith("visual."))
    assert {"token_embedding.weight", "positional_embedding", "ln_final.weight", "text_projection"} <= set(text_keys)
    oc = open_clip.CLIP(**cfg).eval()
    oc.load_state_dict(weights, strict=True)
    ctx, vocab = cfg["text_cfg"]["context_length"], cfg["text_cfg"]["vocab_size"]
    gen = torch.Generator().manual_seed(seed)
    bos, end = vocab - 2, vocab - 1  # open_clip pools at the argmax: the end token is the largest id
    seqs = [
        [bos, end],
        [bos] + draw(gen, 1, 0, bos) + [end],
        [bos] + draw(gen, 3, 0, bos) + [end],
        [bos] + draw(gen, ctx - 2, 0, bos) + [end],  # the whole context
    ]

    def encode(model, batch):
        """encode_text on sequences zero-padded to the context, and ln_final's output."""
        seen = []
        hook = model.ln_final.register_forward_hook(lambda m, i, o: seen.append(o))
        ids, _ = padded(batch, 0, length=ctx)
        with torch.inference_mode():
            embeds = model.encode_text(ids)
        hook.remove()
        hidden = seen[0]
        pooled = hidden[torch.arange(len(batch)), ids.argmax(dim=-1)]
        return {"text_embeds": embeds, "pooler_output": pooled, "last_hidden_state": hidden}

    def alone(model):
        outs = [encode(model, [s]) for s in seqs]
        tensors = stack_alone(outs)
        for i, s in enumerate(seqs):
            tensors[f"last_hidden_state.{i}"] = tensors[f"last_hidden_state.{i}"][:len(s)]
        return tensors

    tensors = alone(oc)
    together = deviations(tensors, encode(oc, seqs), seqs)
    assert max(together.values()) < 1e-5, together
    f64 = deviations(tensors, alone(copy.deepcopy(oc).double()), seqs)
    meta = {"made_by": MADE_BY, "seed": seed, "open_clip_version": open_clip.__version__,
            "model": "open_clip.CLIP(**open_clip_config.json's model_cfg), open_clip_model.safetensors",
            "text_keys": text_keys, "input_ids": seqs, "pad_token_id": 0, "context_length": ctx,
            "pooling": "argmax of the ids (open_clip's text_pool_type 'argmax')",
            "pool_positions": [argmax_id(s) for s in seqs],
            "max_abs_reference": {"text_embeds": float(tensors["text_embeds"].abs().max()),
                                  "pooler_output": float(tensors["pooler_output"].abs().max()),
                                  "last_hidden_state": max(float(tensors[f"last_hidden_state.{i}"].abs().max())
                                                           for i in range(len(seqs)))},
            "batch_vs_alone_max_abs": together, "torch_f32_vs_f64_max_abs": f64}
    save_reference(out_dir, tensors, meta, name="text_reference")
    report("open-clip text", meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="only these fixtures")
    args = ap.parse_args()
    torch.manual_seed(0)
    want = lambda name: not args.only or name in args.only
    if want("tokenizer"):
        make_tokenizer()
    if want("text-gelu"):
        make_text_gelu(seed=3000)
    if want("text-legacy-eos"):
        make_text_legacy_eos(seed=3001)
    if want("text-model-noproj"):
        make_text_noproj(seed=3002)
    if want("clip-text-full"):
        make_clip_text_full(seed=3003)
    if want("openai-text"):
        make_openai_text(seed=3004)
    if want("open-clip"):
        make_open_clip_text(seed=3005)


if __name__ == "__main__":
    main()
