"""make_title: readable titles from the openings the listing shows."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedd.core.parse import parse_dump
from feedd.feeds.title import UNTITLED, make_title

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"

# Every distinct item of the seed dumps, keyed by the start of its line, with
# the title it must get at the default 80 characters.
SEED_TITLES = [
    (
        "💡 Flowbased Mode",
        "Flowbased Models Normalizing Flow 是一种基于变换对概率分布进行建模的模型",
    ),
    (
        "简介 作为一个自编码器,VQVA",
        "作为一个自编码器,VQVAE的一个明显特征是它编码出的编码向量是离散的",
    ),
    ("技术分析 从方法上来看,条件控制", "从方法上来看,条件控制生成的方式分两种"),
    (
        "SD模型原理 SD是CompVi",
        "SD模型原理 SD是CompVis、Stability AI和LAION等公司研发的一个文生图模型",
    ),
    ("DeepSeekV2的发布引起了", "DeepSeekV2的发布引起了大家的热烈讨论"),
    ("背景 RLHF 通常包括三个阶段", "RLHF 通常包括三个阶段"),
    ("💡 Score based ge", "Score based generative model SMLD的关键点"),
    ("ControlNet应该算是20", "ControlNet应该算是2023年文生图领域最重要的工作"),
    ("UITARS 简介 UITARS", "UITARS 简介"),
    ("Stanford Alpaca ", "Stanford Alpaca 结合英文语料通过Self Instruct方式微调LLaMA 7B"),
    ("给定一个包含 n 维数据 x 的", "给定一个包含 n 维数据 x 的数据集 D"),
    ("论文名称:LLaMA: Open", "LLaMA: Open and Efficient Foundation Language Models"),
    (
        "ViT(vision trans",
        "ViT(vision transformer)是Google在2020年提出的直接将transformer应用在图像分类的模型",
    ),
    (
        "基于文章 《Elucidatin",
        "基于文章 《Elucidating the Design Space of Diffusion-Based Generative Models》…",
    ),
    ("Normalizing flow", "Normalizing flow(标准化流)是一类对概率分布进行建模的工具"),
    ("🔖 https://www.de", "DeepSeek LLM"),
    ("简介 24年12月,研究团队开发", "24年12月,研究团队开发了 DeepSeek-V3"),
    ("1.深度学习偏置的作用? 我们在", "深度学习偏置的作用?"),
    (
        "一般来说,神经网络处理的东西都是",
        "一般来说,神经网络处理的东西都是连续的浮点数,标准的输出也是连续型的数字",
    ),
    (
        "如何计算RF 公式一:这个算法从",
        "如何计算RF 公式一:这个算法从top往下层层迭代直到追溯回input image,从而计算出RF",
    ),
    (
        "背景 本文主要是《NICE: N",
        "本文主要是《NICE: Nonlinear Independent Components Estimation》一文的介绍和实现",
    ),
    (
        "💡 原本随机采样的DDPM模型中",
        "原本随机采样的DDPM模型中,也隐含了一个确定性的采样过程DDIM,它的连续极限也是一个ODE",
    ),
    ("简介 之前的很多方法都是用RNN", "之前的很多方法都是用RNN的结构去构建时序上的依赖关系"),
    ("梯度检查点(Gradient C", "梯度检查点(Gradient Checkpointing) 大模型的参数量巨大"),
    (
        "文章从连续情形出发开始介绍重参数",
        "文章从连续情形出发开始介绍重参数,主要的例子是正态分布的重参数",
    ),
    ("Self-Supervised ", "Self-Supervised Learning"),
    ("简介 如果以概率的视角看待世界的", "如果以概率的视角看待世界的生成模型"),
    (
        "2022年中旬,以扩散模型为核心",
        "2022年中旬,以扩散模型为核心的图像生成模型将AI绘画带入了大众的视野",
    ),
    ("分布变换 通常我们会拿VAE跟G", "分布变换 通常我们会拿VAE跟GAN比较"),
    (
        "Tokenizer 诸如GPT3",
        "Tokenizer 诸如GPT3/4以及LlaMA/LlaMA2大语言模型都采用了token的作为模型的输入输出",
    ),
    ("什么是Word2Vec和Embe", "什么是Word2Vec和Embeddings?"),
    ("RNN 概述 在前面讲到的DNN", "RNN 概述"),
    ("取代RNN——Transform", "取代RNN——Transformer 在介绍Transformer前我们来回顾一下RNN的结构"),
    ("Diffusion Models", "Diffusion Models from SDE 连续扩散模型 (Continuous Diffusion Models)…"),
    ("💡 随机微分 在DDPM中,扩散", "随机微分 在DDPM中,扩散过程被划分为了固定的T步"),
    ("🔖 https://stabil", "SD3 模型与训练策略改进细节 SD3除了将去噪网络从 UNet 改成 DiT 外"),
    ("概述 SSM的概念由来已久,但这", "SSM的概念由来已久,但这里我们特指深度学习中的SSM"),
    ("💡 轻量级网络系列 Introd", "轻量级网络系列 Introduction"),
    ("网络整体介绍 ThunderNe", "网络整体介绍 ThunderNet的整体架构如下图所示"),
    ("1. 什么是NGram模型 NG", "什么是NGram模型 NGram是一种基于统计语言模型的算法"),
    (
        "引言与背景 FlashAtten",
        "FlashAttention的关键创新在于使用类似于在线Softmax的思想来对自注意力计算进行分块(tiling)",
    ),
    ("模型概述 KimiVL 是一个高", "KimiVL 是一个高效的开源混合专家视觉语言模型(VLM)"),
    (
        "计算几何(Computation",
        "计算几何(Computational Geometry),是一系列使用计算机解决几何问题的算法",
    ),
    (
        "背景:大模型 vs. GPU M",
        "大模型 vs. GPU Memory 大模型最大的特点是模型参数多,训练时需要很大的GPU显存",
    ),
    ("Chameleon:生成理解统一", "Chameleon:生成理解统一模型的开山之作"),
    ("🔖 https://docs.d", "Docker 按照官方文档说明配置即可"),
    (
        "题目 给定一个无序的数组,找出数",
        "给定一个无序的数组,找出数组在排序之后,相邻元素之间最大的差值",
    ),
]


def seed_items() -> dict[str, str]:
    """Distinct item texts of the seed dumps, keyed as in SEED_TITLES."""
    items: dict[str, str] = {}
    for path in sorted(SEEDS.glob("*.txt")):
        for item in parse_dump(path.read_bytes()).items:
            items.setdefault(item.text[:16], item.text)
    return items


@pytest.fixture(scope="module")
def seeds() -> dict[str, str]:
    if not SEEDS.is_dir():
        pytest.skip(f"seed dumps not found at {SEEDS}")
    return seed_items()


def test_the_table_covers_every_seed_item(seeds: dict[str, str]) -> None:
    assert len(seeds) == 47
    assert sorted(seeds) == sorted(key for key, _ in SEED_TITLES)


@pytest.mark.parametrize(("key", "expected"), SEED_TITLES, ids=[k for k, _ in SEED_TITLES])
def test_seed_titles(seeds: dict[str, str], key: str, expected: str) -> None:
    assert make_title(seeds[key]) == expected


def test_seed_titles_respect_smaller_limits(seeds: dict[str, str]) -> None:
    for text in seeds.values():
        for limit in (10, 24, 40):
            title = make_title(text, limit)
            assert 0 < len(title) <= limit + 1, (limit, title)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Generic headings go, with a colon or a space after them ...
        ("简介 VQVAE 是一个自编码器。它很有用。", "VQVAE 是一个自编码器"),
        ("背景:大模型很大", "大模型很大"),
        ("摘要：本文提出了一种新方法", "本文提出了一种新方法"),
        ("Introduction: Transformers are great. They work.", "Transformers are great"),
        ("Introduction Inception is a network", "Inception is a network"),
        # ... but not when they are the start of a word or a real title.
        ("背景音乐的制作方法很复杂,我们来看看", "背景音乐的制作方法很复杂,我们来看看"),
        ("Introduction to Transformers", "Introduction to Transformers"),
        # Markers, a leading URL, list numbers.
        ("💡 随机微分方程", "随机微分方程"),
        ("🔖 https://example.com/x 正文标题", "正文标题"),
        ("1. 什么是 NGram", "什么是 NGram"),
        ("一、总体思路", "总体思路"),
        # A label whose value is the title; a URL label ends it.
        (
            "论文名称:Attention Is All You Need 论文地址: https://arxiv.org/abs/1",
            "Attention Is All You Need",
        ),
        ("Title: A Paper", "A Paper"),
        # Placeholders and LaTeX: the broken clause is dropped, a lone symbol kept.
        ("给定数据集 D, 假设数据 [Math] 服从分布", "给定数据集 D"),
        ("从隐变量 \\(Z\\) 生成目标数据 \\(X\\) 的模型", "从隐变量 Z 生成目标数据 X 的模型"),
        ("$5 and $10 are prices", "$5 and $10 are prices"),
        # Sentence ends that are not: abbreviations, decimals, initialisms.
        ("大模型 vs. GPU Memory", "大模型 vs. GPU Memory"),
        ("U.S. economy grew 3.5% in 2024. Analysts expect more.", "U.S. economy grew 3.5% in 2024"),
        # A question keeps its mark; a full stop goes.
        ("什么是Word2Vec? 它是一种模型。", "什么是Word2Vec?"),
        ("这是一个句子。", "这是一个句子"),
        # Spacing tidied; an immediately repeated heading collapsed.
        ("Self-Supervised Learning ,又称为自监督学习", "Self-Supervised Learning,又称为自监督学习"),
        ("Normalizing Flow Normalizing Flow 是一种模型", "Normalizing Flow 是一种模型"),
        # Untrusted text: controls, format characters, surrogates.
        ("a\x00b\x0bc\x1bd\ufffee\u202e f", "ab cde f"),
        ("lone \ud800 surrogate", "lone surrogate"),
    ],
)
def test_title_rules(text: str, expected: str) -> None:
    assert make_title(text) == expected


def test_a_long_latin_text_is_cut_between_words() -> None:
    text = "This is a long English sentence about attention " * 4
    title = make_title(text, 40)
    assert title.endswith("…")
    assert len(title) <= 41
    words = title[:-1].split(" ")
    assert all(word in text.split(" ") for word in words)


def test_a_single_long_word_is_cut_hard() -> None:
    assert make_title("a" * 200, 10) == "a" * 10 + "…"


def test_an_unclosed_bracket_is_not_left_dangling() -> None:
    text = "模型结构很简单,它的核心是一个编码器(encoder, 其中包括很多很多很多很多层的变换和注意力"
    title = make_title(text, 30)
    assert "(" not in title
    assert title == "模型结构很简单"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", UNTITLED),
        ("   \n\t ", UNTITLED),
        ("💡🔖", UNTITLED),
        ("\x00\x01", UNTITLED),
        # Nothing but a heading, a placeholder or a URL: the text itself.
        ("简介", "简介"),
        ("[Math]", "[Math]"),
        ("https://example.com/a", "https://example.com/a"),
    ],
)
def test_never_empty(text: str, expected: str) -> None:
    assert make_title(text) == expected


_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=300),
    st.lists(
        st.sampled_from(
            list("简介背景概述 :：,，。.?？!;；()（）《》[]💡🔖\\$_^{}aZ9\x00\x0b\x1b\ufffe\ud800")
            + ["[Math]", "[公式]", "https://x.org/a ", "\\(", "\\)", "vs. ", "1. ", "Introduction "]
        ),
        max_size=60,
    ).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(text=_TEXT, max_chars=st.integers(min_value=1, max_value=120))
def test_any_text_gives_a_short_clean_title(text: str, max_chars: int) -> None:
    title = make_title(text, max_chars)
    assert title
    assert title == title.strip()
    assert len(title) <= max_chars + 1
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in title)
    assert "\ufffe" not in title and "\uffff" not in title
    title.encode("utf-8")  # no lone surrogate survives
