"""A small invented-but-consistent "world" of facts in Japanese and English.

The sample corpus, the SFT set and the evaluation prompts all draw from these tables, so a
tiny model can actually learn facts in pretraining that it is later asked about in SFT
(e.g. the capital of France is Paris / フランスの首都はパリ). Everything here is written for
this project; no text is copied from anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Country:
    en: str
    ja: str
    capital_en: str
    capital_ja: str
    continent_en: str
    continent_ja: str
    language_en: str
    language_ja: str


COUNTRIES = [
    Country("Japan", "日本", "Tokyo", "東京", "Asia", "アジア", "Japanese", "日本語"),
    Country("France", "フランス", "Paris", "パリ", "Europe", "ヨーロッパ", "French", "フランス語"),
    Country("Germany", "ドイツ", "Berlin", "ベルリン", "Europe", "ヨーロッパ", "German", "ドイツ語"),
    Country("Italy", "イタリア", "Rome", "ローマ", "Europe", "ヨーロッパ", "Italian", "イタリア語"),
    Country("Spain", "スペイン", "Madrid", "マドリード", "Europe", "ヨーロッパ", "Spanish", "スペイン語"),
    Country("China", "中国", "Beijing", "北京", "Asia", "アジア", "Chinese", "中国語"),
    Country("Korea", "韓国", "Seoul", "ソウル", "Asia", "アジア", "Korean", "韓国語"),
    Country("Egypt", "エジプト", "Cairo", "カイロ", "Africa", "アフリカ", "Arabic", "アラビア語"),
    Country("Brazil", "ブラジル", "Brasilia", "ブラジリア", "South America", "南アメリカ", "Portuguese", "ポルトガル語"),
    Country("Canada", "カナダ", "Ottawa", "オタワ", "North America", "北アメリカ", "English", "英語"),
    Country("Australia", "オーストラリア", "Canberra", "キャンベラ", "Oceania", "オセアニア", "English", "英語"),
    Country("India", "インド", "New Delhi", "ニューデリー", "Asia", "アジア", "Hindi", "ヒンディー語"),
    Country("Mexico", "メキシコ", "Mexico City", "メキシコシティ", "North America", "北アメリカ", "Spanish", "スペイン語"),
    Country("Kenya", "ケニア", "Nairobi", "ナイロビ", "Africa", "アフリカ", "Swahili", "スワヒリ語"),
    Country("Sweden", "スウェーデン", "Stockholm", "ストックホルム", "Europe", "ヨーロッパ", "Swedish", "スウェーデン語"),
    Country("Thailand", "タイ", "Bangkok", "バンコク", "Asia", "アジア", "Thai", "タイ語"),
]


@dataclass(frozen=True)
class City:
    en: str
    ja: str
    region_ja: str
    known_for_en: str
    known_for_ja: str


JAPANESE_CITIES = [
    City("Osaka", "大阪", "近畿", "takoyaki and a lively food culture", "たこ焼きとにぎやかな食文化"),
    City("Kyoto", "京都", "近畿", "old temples and quiet gardens", "古いお寺と静かな庭園"),
    City("Sapporo", "札幌", "北海道", "a winter snow festival", "冬の雪まつり"),
    City("Fukuoka", "福岡", "九州", "ramen stalls along the river", "川沿いのラーメン屋台"),
    City("Nagoya", "名古屋", "中部", "a famous castle and car factories", "有名なお城と自動車工場"),
    City("Yokohama", "横浜", "関東", "a large port and a Chinatown", "大きな港と中華街"),
    City("Kobe", "神戸", "近畿", "a harbor view and beef", "港の景色と牛肉"),
    City("Sendai", "仙台", "東北", "a summer star festival", "夏の七夕まつり"),
    City("Hiroshima", "広島", "中国", "a peace park and okonomiyaki", "平和公園とお好み焼き"),
    City("Naha", "那覇", "沖縄", "warm beaches and coral reefs", "暖かい海とサンゴ礁"),
]


@dataclass(frozen=True)
class Animal:
    en: str
    ja: str
    kind_en: str
    kind_ja: str
    eats_en: str
    eats_ja: str
    lives_en: str
    lives_ja: str


ANIMALS = [
    Animal("cat", "猫", "mammal", "哺乳類", "fish and meat", "魚や肉", "houses", "家"),
    Animal("dog", "犬", "mammal", "哺乳類", "meat", "肉", "houses", "家"),
    Animal("penguin", "ペンギン", "bird", "鳥類", "fish", "魚", "cold seas", "寒い海"),
    Animal("frog", "カエル", "amphibian", "両生類", "insects", "虫", "ponds", "池"),
    Animal("owl", "フクロウ", "bird", "鳥類", "mice", "ネズミ", "forests", "森"),
    Animal("dolphin", "イルカ", "mammal", "哺乳類", "fish", "魚", "the ocean", "海"),
    Animal("turtle", "カメ", "reptile", "爬虫類", "plants", "植物", "rivers", "川"),
    Animal("horse", "馬", "mammal", "哺乳類", "grass", "草", "fields", "草原"),
    Animal("bee", "ミツバチ", "insect", "昆虫", "nectar", "花の蜜", "hives", "巣箱"),
    Animal("panda", "パンダ", "mammal", "哺乳類", "bamboo", "竹", "mountain forests", "山の森"),
]

FOODS_EN = ["ramen", "sushi", "curry rice", "bread", "apples", "miso soup", "pasta", "rice balls", "tempura", "salad"]
FOODS_JA = ["ラーメン", "寿司", "カレーライス", "パン", "りんご", "味噌汁", "パスタ", "おにぎり", "天ぷら", "サラダ"]
WEATHER_EN = ["sunny", "rainy", "cloudy", "windy", "snowy", "warm", "cold"]
WEATHER_JA = ["晴れ", "雨", "くもり", "風が強い日", "雪", "暖かい日", "寒い日"]
NAMES_EN = ["Alice", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Henry", "Ivy", "Jack"]
NAMES_JA = ["さくら", "太郎", "花子", "健太", "美咲", "翔太", "結衣", "大輔", "彩", "蓮"]
OBJECTS_EN = ["an old key", "a red umbrella", "a small map", "a wooden box", "a silver bell", "a lost letter"]
OBJECTS_JA = ["古い鍵", "赤い傘", "小さな地図", "木の箱", "銀の鈴", "なくした手紙"]
