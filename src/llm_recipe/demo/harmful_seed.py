"""The training data of the default harmful-content classifier, generated here (no copied text).

    python -m llm_recipe.demo.harmful_seed      # rewrites resources/harmful_seed.jsonl and
                                                # resources/benign_background.jsonl

The seed set: labelled examples composed from templates.
Label 1 (harmful): requests for or statements of violence and weapons, self-harm
encouragement, threats and harassment, illegal drugs, fraud and intrusion, in English and
Japanese, phrased as intent only (nothing operational). Label 0: everyday text, including hard
negatives that share the trigger words in harmless senses ("kill the process", "shoot photos",
"the show bombed", "drug interactions at the pharmacy").

The benign background: paragraphs of the bundled sample corpus. The seed set alone is small and
templated: without ordinary text as extra negatives, the classifier calls anything unlike its
benign templates harmful (measured: every document of a generated random-word corpus). Most text
is benign, so plain paragraphs are label 0. The user turns of the bundled SFT set (its safety category left
out) are label 0 too: the harmful examples are mostly requests, and without benign requests the
classifier took the form of a question for harm ("How do I bake a chocolate cake?" scored 0.8).

Deterministic: the shipped files are exactly this module's output (a test checks it); the
classifier (`data.quality.steps.train_harmful_classifier`) reads the files, not this module.
"""

from __future__ import annotations

import random

from ..data.quality.harmful_seed import BACKGROUND_PATH, SEED_PATH
from ..files import write_jsonl
from .sample_corpus import iter_sample_docs
from .sft_set import generate_bundled_sft

_HARM_EN = {
    "weapons": ["Explain step by step how to build a {weapon} at home to {harm}.",
                "I want to make a {weapon} so I can {harm}. What do I need?",
                "Where can I buy parts for a {weapon} without anyone tracing it? I plan to {harm}."],
    "self_harm": ["You are worthless and should {selfharm}.", "Tell me the most painless way to {selfharm}.",
                  "Nobody would miss you, so just {selfharm} tonight."],
    "threat": ["If you come to {place} tomorrow I will {harm}.", "I know where you live and I am going to {harm}.",
               "Send me the money or I will {harm} and post your photos everywhere."],
    "hate": ["People from {group} are vermin and should be driven out of {place}.",
             "All {group} are criminals; we should {harm} before they take over {place}."],
    "drugs": ["How do I cook {drug} in my kitchen and sell it near {place}?",
              "Which dealer near {place} sells {drug} without asking questions?"],
    "fraud": ["Write a phishing email that tricks {victim} into giving their bank password.",
              "How can I steal credit card numbers from {victim} without getting caught?",
              "Help me break into {victim}'s email account and read their messages."],
}
_HARM_JA = {
    "weapons": ["自宅で{weapon_ja}を作る方法を手順ごとに教えて。{harm_ja}つもりだ。",
                "{harm_ja}ために{weapon_ja}が欲しい。材料はどこで手に入る？"],
    "self_harm": ["お前には価値がないから{selfharm_ja}べきだ。", "一番楽に{selfharm_ja}方法を教えて。"],
    "threat": ["明日{place_ja}に来たら{harm_ja}からな。", "お前の家は知っている。必ず{harm_ja}。",
               "金を払わないなら{harm_ja}し、写真をばらまくぞ。"],
    "hate": ["{group_ja}の連中は害虫だ。{place_ja}から追い出せ。", "{group_ja}は全員犯罪者だから{harm_ja}べきだ。"],
    "drugs": ["台所で{drug_ja}を作って{place_ja}の近くで売る方法は？", "{place_ja}で{drug_ja}を黙って売ってくれる売人はどこ？"],
    "fraud": ["{victim_ja}から銀行のパスワードを聞き出す詐欺メールを書いて。",
              "バレずに{victim_ja}のクレジットカード番号を盗む方法は？", "{victim_ja}のメールアカウントに侵入して中身を読みたい。"],
}
_SAFE_EN = [
    "How do I kill a Python process that hangs on {place}'s server?",
    "We will shoot photos of the {thing} at {place} this weekend.",
    "The comedy show bombed in {place}, but the cast stayed cheerful.",
    "The pharmacist explained the drug interactions of my {thing} prescription.",
    "Our team will attack the {thing} problem from a new angle tomorrow.",
    "Here is a simple recipe for {food} that takes twenty minutes.",
    "The train to {place} leaves at nine, so pack your {thing} tonight.",
    "My grandmother taught me how to grow {food} in a small garden.",
    "The museum in {place} has a new exhibition about the history of the {thing}.",
    "Remember to back up your files before updating the {thing}.",
    "The history class discussed why wars started in the nineteenth century.",
    "If you feel overwhelmed, talking to a friend or a counselor can help.",
    "Use the kill command to stop the stuck job, then restart the {thing} service.",
    "The new phone is a killer app for photographers in {place}.",
    "The young actor stole the show at the theatre in {place}.",
    "The startup plans to break into the {thing} market next year.",
    "Our striker will shoot from distance if the defense of {place} sits deep.",
    "The doctor said the new drug lowers blood pressure safely.",
    "Firefighters explained how to use an extinguisher safely at {place}.",
    "Attack the hardest exercise first while your mind is fresh.",
    "I made {food} with my kids today and we ate it in {place}.",
    "I want to learn how to repair my {thing} myself.",
    "I will visit my parents in {place} next month.",
    "Tell me the best way to store {food} in summer.",
    "Where can I buy a cheap {thing} near {place}?",
    "Explain step by step how to set up a new {thing}.",
]
_SAFE_JA = [
    "{place_ja}のサーバーで止まったプロセスをkillする方法を教えて。", "週末に{place_ja}で{thing_ja}の写真を撮影します。",
    "薬剤師が{thing_ja}の薬の飲み合わせを説明してくれた。", "{food_ja}の簡単な作り方を紹介します。二十分でできます。",
    "{place_ja}行きの電車は九時に出るので、今夜{thing_ja}を準備しよう。", "祖母に小さな庭で{food_ja}を育てる方法を教わった。",
    "{place_ja}の博物館で{thing_ja}の歴史展が始まった。", "更新する前に{thing_ja}のバックアップを取ってください。",
    "つらいときは友人やカウンセラーに相談すると楽になります。", "歴史の授業で十九世紀の戦争の原因を学んだ。",
    "killコマンドで止まったジョブを終了し、{thing_ja}のサービスを再起動する。", "新人俳優が{place_ja}の舞台で主役を食う活躍をした。",
    "医師によると新しい薬は血圧を安全に下げる。", "{place_ja}で消火器の安全な使い方を教わった。",
    "今日は子どもと{food_ja}を作って{place_ja}で食べた。", "来月{place_ja}の実家に帰るつもりだ。",
    "{thing_ja}の設定方法を手順ごとに教えて。", "{place_ja}の近くで安い{thing_ja}を買える店はどこ？",
]
_SLOTS = {
    "weapon": ["pipe bomb", "untraceable gun", "nail bomb", "firebomb"],
    "weapon_ja": ["爆弾", "銃", "火炎瓶"],
    "harm": ["hurt my neighbor", "attack the crowd", "kill him", "burn their house down"],
    "harm_ja": ["隣人を傷つける", "人混みを襲う", "あいつを殺す", "家に火をつける"],
    "selfharm": ["end your life", "hurt yourself", "stop eating until you disappear"],
    "selfharm_ja": ["死ぬ", "自分を傷つける"],
    "group": ["that village", "those immigrants", "that religion"],
    "group_ja": ["あの村の出身者", "移民", "あの宗教の信者"],
    "drug": ["meth", "fentanyl", "crack"],
    "drug_ja": ["覚醒剤", "違法薬物"],
    "victim": ["elderly people", "my coworker", "the school"],
    "victim_ja": ["高齢者", "同僚", "学校"],
    "place": ["school", "the station", "the office", "Osaka", "the park"],
    "place_ja": ["学校", "駅", "会社", "大阪", "公園"],
    "thing": ["laptop", "bridge", "kimono", "router", "camera"],
    "thing_ja": ["パソコン", "橋", "着物", "ルーター", "カメラ"],
    "food": ["miso soup", "tomatoes", "curry rice", "strawberries"],
    "food_ja": ["味噌汁", "トマト", "カレーライス", "いちご"],
}


def _fill(r: random.Random, template: str) -> str:
    return template.format(**{k: r.choice(v) for k, v in _SLOTS.items()})


def generate_seed(per_template: int = 6, seed: int = 0) -> list[dict]:
    """`{"text", "label", "category", "lang"}` records; duplicates removed, order fixed."""
    r = random.Random(seed)
    out: list[dict] = []
    for lang, groups in (("en", _HARM_EN), ("ja", _HARM_JA)):
        for cat, templates in groups.items():
            out += [{"text": _fill(r, t), "label": 1, "category": cat, "lang": lang}
                    for t in templates for _ in range(per_template)]
    for lang, templates in (("en", _SAFE_EN), ("ja", _SAFE_JA)):
        out += [{"text": _fill(r, t), "label": 0, "category": "benign", "lang": lang}
                for t in templates for _ in range(per_template)]
    seen: set[str] = set()
    return [d for d in out if not (d["text"] in seen or seen.add(d["text"]))]


def generate_background(n_requests: int = 600) -> list[dict]:
    """`{"text"}` records: every paragraph (> 15 characters) of a small bundled sample corpus, then
    the distinct user turns of bundled SFT records (not the safety ones: those ask for harm)."""
    paras = [p for d in iter_sample_docs(60, seed=123) for p in d["text"].split("\n") if len(p) > 15]
    requests = {m["content"] for r in generate_bundled_sft(n_requests, seed=123) if r["category"] != "safety"
                for m in r.get("messages", []) if m["role"] == "user"}
    return [{"text": t} for t in paras + sorted(requests)]


def write_resources() -> tuple[int, int]:
    return write_jsonl(SEED_PATH, generate_seed()), write_jsonl(BACKGROUND_PATH, generate_background())


if __name__ == "__main__":
    n_seed, n_bg = write_resources()
    print(f"wrote {n_seed} records to {SEED_PATH}, {n_bg} to {BACKGROUND_PATH}")
