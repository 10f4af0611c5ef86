"""The main texts of the labelled web pages (`web_pages`): 16 Japanese and 16 English articles
written for this project (news, columns, how-tos, reviews, encyclopedia entries).

Markup: `# ` the title, `## ` a heading, every other non-empty line a paragraph; `{漢字|かんじ}`
is a ruby annotation (rendered as `<ruby>漢字<rt>かんじ</rt></ruby>`; its label is the base text).
"""

from __future__ import annotations

ARTICLES_JA = [
    """# 京都の紅葉、今年は平年より一週間ほど遅れる見通し
京都市内の紅葉の見頃が、今年は平年より一週間ほど遅れる見通しだと地元の観光協会が発表した。九月以降も最高気温が三十度を超える日が続き、葉の色づきが始まる時期が後ろにずれたためだという。
## 見頃は十一月下旬から
協会によると、東山や嵐山など市内の主な名所では十一月下旬から十二月上旬にかけて見頃を迎える。朝晩の冷え込みが強まれば、色づきが一気に進む可能性もあるとしている。
例年この時期には多くの観光客が訪れるため、市は公共交通機関の利用を呼びかけている。特に週末の午後は道路が混雑しやすく、バスの遅れも目立つという。
## 夜間の特別拝観も
いくつかの寺院では夜間の特別拝観を予定しており、ライトアップされた紅葉を楽しめる。拝観には事前予約が必要な場合があるので、各寺院のお知らせを確認してほしい。""",
    """# 自宅でできる簡単な味噌の仕込み方
味噌は大豆と麹と塩があれば家庭でも作ることができる。仕込みから食べられるようになるまで半年ほどかかるが、作業そのものは半日で終わる。
## 材料の準備
乾燥大豆一キロを一晩たっぷりの水に浸しておく。翌日、指でつぶせるほど柔らかくなるまで三時間から四時間ほど煮る。圧力鍋を使えば時間を大きく短縮できる。
米麹一キロと塩四百五十グラムをよく混ぜ合わせておく。これを「塩切り麹」と呼び、麹が均一に塩をまとうように手でほぐしながら混ぜるのがこつだ。
## 仕込みと保存
煮た大豆をつぶし、人肌まで冷ましてから塩切り麹と合わせる。団子状に丸めて容器に空気が入らないよう詰め、表面に塩をふってラップで覆う。
冷暗所に置き、夏を越したら天地返しをする。秋には色の濃い、香りのよい味噌ができあがっているはずだ。""",
    """# 地方鉄道の無人駅、地域の交流拠点として再生
利用者の減少で無人化された地方鉄道の駅舎を、地域住民が交流拠点として活用する取り組みが広がっている。待合室を改装してカフェや図書コーナーを設け、高校生や高齢者が集まる場所になった例もある。
## 住民の手で改装
ある町では、住民有志が資金を出し合い、古くなった駅舎の床や壁を自分たちで張り替えた。地元の大工が作業の手順を教え、週末ごとに二十人ほどが集まったという。
完成した駅舎では、月に一度の朝市や写真展が開かれている。列車を待つ間に地元の野菜を買っていく通勤客も多い。
## 鉄道会社も支援
鉄道会社は駅舎の使用料を免除し、改装の際の安全確認にも協力した。担当者は「駅が人の集まる場所に戻ることは、路線の存続にとっても意味がある」と話している。""",
    """# 睡眠の質を上げるために見直したい三つの習慣
寝つきが悪い、夜中に何度も目が覚めるといった悩みは、日々の小さな習慣を変えることで改善する場合がある。専門家が勧める三つのポイントを紹介する。
## 起きる時刻をそろえる
休日も含めて毎朝同じ時刻に起きると、体内時計が整いやすい。夜ふかしをした翌日でも、起床時刻はなるべくずらさないほうがよい。
## 寝る前の画面を控える
スマートフォンやパソコンの画面から出る光は、眠気を促すホルモンの分泌を妨げるとされる。就寝の一時間前には画面を見るのをやめ、読書や軽いストレッチに切り替えるとよい。
## 夕方以降のカフェインに注意
コーヒーや緑茶に含まれるカフェインは、人によっては数時間にわたって覚醒作用が続く。午後三時以降は控えめにすることを勧める専門家が多い。""",
    """# {金閣寺|きんかくじ}と{銀閣寺|ぎんかくじ}、二つの寺の成り立ち
京都を代表する二つの寺院、金閣寺と銀閣寺は、どちらも室町幕府の将軍によって建てられた山荘がもとになっている。正式な名前はそれぞれ{鹿苑寺|ろくおんじ}と{慈照寺|じしょうじ}という。
## 足利義満と北山文化
金閣寺は三代将軍足利義満が晩年を過ごした北山殿を起源とする。金箔で覆われた舎利殿は、公家と武家の文化が融け合った北山文化を象徴する建物として知られている。
## 足利義政と東山文化
銀閣寺は八代将軍足利義政が東山に営んだ山荘に始まる。銀箔は実際には貼られておらず、簡素で落ち着いた美しさは、後の日本建築や茶の湯に大きな影響を与えた。
二つの寺を見比べると、華やかさと静けさという室町時代の文化の二つの面がよくわかる。""",
    """# 中小企業のデジタル化、最初の一歩は紙の帳票から
人手不足が続くなか、中小企業でも業務のデジタル化に取り組む動きが広がっている。ただ、大がかりなシステムを導入したものの使われなくなる例も少なくない。
## 小さく始めて効果を確かめる
ある金属加工会社では、まず紙で管理していた作業日報を表計算ソフトに置き換えた。入力の手間は増えたが、集計にかかっていた時間が月に二十時間ほど減ったという。
効果が見えたことで社員の抵抗感も薄れ、翌年には在庫管理や受発注にも対象を広げた。社長は「全部を一度に変えようとしなかったのがよかった」と振り返る。
## 相談窓口の活用も
自治体や商工会議所には、デジタル化の相談に無料で応じる窓口がある。補助金の案内を受けられることもあり、まずは気軽に相談してみるとよいだろう。""",
    """# 初心者のための家庭菜園、ミニトマトの育て方
ミニトマトは病気に強く、プランターでも育てやすいので家庭菜園の入門に向いている。日当たりのよいベランダがあれば、夏の間たくさんの実を収穫できる。
## 苗の選び方と植え付け
苗は茎が太く、葉の色が濃いものを選ぶ。一番花が咲き始めたころが植え付けの適期で、深さ三十センチ以上のプランターに一株ずつ植えるとよい。
## 水やりと支柱
水は土の表面が乾いてから、鉢底から流れ出るまでたっぷり与える。実が赤くなり始めたら水を少し控えめにすると、甘みが増すといわれている。
背が伸びてきたら支柱を立てて茎をひもで結び、わきから出る芽はこまめに摘み取る。こうすることで栄養が実に集まりやすくなる。""",
    """# 図書館の電子書籍サービス、利用者が三年で倍増
公立図書館が提供する電子書籍の貸し出しサービスの利用者が、この三年でおよそ二倍に増えたことが調査でわかった。自宅から手続きでき、返却の手間がないことが支持されている。
## 学習用途での利用が増加
特に増えているのは、中高生による学習参考書や調べ学習のための利用だ。紙の本では予約待ちが長い人気の資料も、電子版なら同時に複数の人が読める場合がある。
一方で、電子書籍として提供される作品はまだ限られており、出版社との契約条件が導入の壁になっているとの声もある。
## 高齢者向けの講習会も
画面の文字を大きくできる電子書籍は、視力の落ちた高齢者にも読みやすい。各地の図書館では、タブレットの使い方から教える講習会を開いている。""",
    """# 日本の祭りに見る山車の文化
日本各地の祭りでは、豪華な装飾をほどこした山車が町を練り歩く光景が見られる。山車は地域によって山、鉾、屋台、だんじりなどさまざまな名前で呼ばれている。
## 神様を迎える依り代
山車はもともと、神様が降りてくる目印となる依り代の役割を持っていたと考えられている。高く飾り立てるのは、天から神様を招くためだったという説がある。
## 町ごとに受け継がれる技
山車の彫刻や幕の刺繍は、町ごとに職人が技を競い合って作り上げてきた。修理には高い技術と多額の費用がかかるため、保存会が寄付を募って維持しているところも多い。
近年は担い手の高齢化が課題となっているが、地元の学校と協力して子どもたちに祭りの仕事を伝える取り組みも始まっている。""",
    """# 冬の電気代を抑えるためにできること
暖房を使う冬は、一年のうちで電気代がもっとも高くなりやすい季節だ。少しの工夫で消費電力を減らし、家計の負担を軽くすることができる。
## 窓からの熱を逃がさない
家の中の熱の多くは窓から逃げていく。厚手のカーテンを床まで届く長さにしたり、窓ガラスに断熱シートを貼ったりするだけでも、部屋の温度が下がりにくくなる。
## エアコンの使い方を見直す
エアコンは設定温度を一度下げるだけで、消費電力が一割ほど減るといわれる。フィルターを二週間に一度掃除することも効果がある。
加湿器で湿度を保つと、同じ室温でも暖かく感じやすい。服装を工夫して、設定温度に頼りすぎないことも大切だ。""",
    """# 海洋プラスチックごみ、回収から再生までの新しい試み
海岸に流れ着くプラスチックごみを回収し、新しい製品に作り変える取り組みが各地で進んでいる。漁業者や学生、企業が協力して、回収から加工までを地域の中で行う例も出てきた。
## 漁網を原料に
ある港町では、使われなくなった漁網を回収して細かく砕き、ペレットにして再利用している。これを原料にしたかばんやサングラスは、観光客の土産物として人気を集めているという。
## 課題は分別の手間
一方で、海から回収したごみは汚れや塩分が多く、種類ごとに分ける作業に手間がかかる。研究者は「回収だけでなく、そもそも海に出さない仕組みづくりが欠かせない」と指摘している。""",
    """# 俳句を始めてみよう、五七五で季節を詠む楽しみ
俳句は五・七・五の十七音で季節の情景や心の動きを表す、世界でもっとも短い詩の一つだ。特別な道具はいらず、ノートと鉛筆があればすぐに始められる。
## 季語を一つ入れる
俳句には季節を表す言葉である季語を一つ入れるのが基本とされる。「桜」なら春、「蝉」なら夏というように、季語は読み手に季節の空気を伝える役割を果たす。
## 見たままを言葉に
初心者のうちは、気持ちを説明するより、目の前の様子をそのまま言葉にするとよい句になりやすい。散歩の途中で見つけた小さな発見を、手帳に書き留めておく習慣をつけよう。
句会に参加すると、ほかの人の句から学べることも多い。最近はインターネット上の句会も盛んだ。""",
    """# 地震に備えて家庭で用意しておきたいもの
大きな地震はいつ起きるかわからない。電気や水道が止まっても数日は自宅で過ごせるよう、日ごろから備えておくことが大切だ。
## 水と食料は最低三日分
飲み水は一人一日三リットルを目安に、少なくとも三日分を用意しておく。食料は普段食べているものを少し多めに買い置きし、使った分を買い足していく方法が続けやすい。
## 家具の固定と避難経路
寝室や子ども部屋の家具は、倒れないように金具で壁に固定しておく。玄関までの通路に物を置かないようにし、家族で避難場所と連絡方法を確認しておこう。
懐中電灯や携帯ラジオ、予備の電池も、すぐに取り出せる場所にまとめておくと安心だ。""",
    """# 将棋の人気、若い世代にも広がる
若手棋士の活躍をきっかけに、将棋を始める子どもや若者が増えている。各地の将棋教室では、小学生の入門者が数年前の倍近くになったところもあるという。
## インターネット対局の普及
スマートフォンのアプリを使えば、いつでも全国の相手と対局できる。人工知能による形勢の評価を見ながら対局を観戦する楽しみ方も定着した。
## 礼儀を学ぶ場としても
将棋教室では、対局の前後に「お願いします」「ありがとうございました」とあいさつすることを大切にしている。保護者からは、負けを認めて相手をたたえる姿勢が身につくと好評だ。
指導者の一人は「勝ち負けだけでなく、考える楽しさを伝えたい」と話している。""",
    """# 和紙づくりの里で、伝統を守る若い職人たち
山あいの和紙の産地で、都市部から移り住んだ若い職人が伝統の技を受け継いでいる。原料の楮を育てるところから紙をすくまで、一年を通して手作業が続く。
## 冬の寒さが紙を締める
和紙づくりは冬が最盛期だ。冷たい水を使うことで原料の繊維が引き締まり、丈夫でつやのある紙になるという。職人たちは凍える手を温めながら、一枚ずつ紙をすいていく。
## 新しい使い道を探る
障子や書道用の紙の需要が減るなか、照明器具や名刺、洋服の素材として和紙を使う試みも始まった。若い職人の一人は「使う人の暮らしに合う形で和紙を残したい」と語る。""",
    """# 子どもの読書感想文、上手に書くためのヒント
夏休みの宿題の定番である読書感想文に、毎年頭を悩ませる子どもは多い。書き方の順序を決めておくと、思ったことを文章にまとめやすくなる。
## 心に残った場面を選ぶ
まず、本の中でいちばん心に残った場面を一つ選ぶ。あらすじを長く書くのではなく、その場面を読んだときに自分がどう感じたかを中心に書くとよい。
## 自分の体験と結びつける
登場人物の行動を、自分の経験と比べて考えてみよう。似たような出来事があれば、そのときの気持ちを書き添えることで、自分にしか書けない感想文になる。
最後に、本を読む前と後で自分の考えがどう変わったかを書いてまとめると、文章全体に筋が通る。""",
]

ARTICLES_EN = [
    """# City Council Approves New Protected Bike Lanes Downtown
The city council voted on Tuesday to build protected bike lanes on four downtown streets, ending a two-year debate over how to make cycling safer in the city centre.
## What will change
Concrete barriers will separate cyclists from car traffic on Main Street, Fifth Avenue and two connecting streets. About ninety parking spaces will be removed, although the plan adds loading zones for delivery vans near the busiest shops.
Construction is expected to begin in the spring and take roughly six months. The council set aside money for a public review after the first year.
## Reactions from residents
Supporters said the lanes would encourage more people to ride to work. Some shop owners worried that fewer parking spaces would keep customers away, and the council promised to publish monthly counts of visitors to the area.""",
    """# How to Keep Sourdough Starter Alive While You Travel
A sourdough starter is a living culture of wild yeast and bacteria, and it needs regular feeding. If you are leaving home for a week or two, a few simple steps will keep it healthy until you return.
## Slow it down in the fridge
Feed the starter as usual, let it sit at room temperature for an hour, then put it in the refrigerator with the lid closed. The cold slows the yeast, so a well-fed starter can rest for two weeks without harm.
## Reviving it afterwards
When you come back, you may see a grey liquid on top. This is alcohol produced by the hungry yeast and is harmless. Pour it off, discard half of the starter and feed it with fresh flour and water.
Repeat the feeding twice a day for two days. Once the starter doubles in size within a few hours of feeding, it is ready to bake with again.""",
    """# The Printing Press and the Spread of Ideas
The movable-type printing press, developed in Europe in the fifteenth century, changed how knowledge travelled. Before it, books were copied by hand, which made them rare and expensive.
## Faster and cheaper books
A single press could produce hundreds of pages a day. Within a few decades, printing shops had opened in more than two hundred European towns, and the price of books fell sharply.
## Effects on learning
Cheaper books meant that scholars in different cities could read the same texts and compare their work. Standard editions reduced the copying errors that had crept into manuscripts over centuries.
Printing also helped spread pamphlets and newspapers, which allowed arguments about religion and politics to reach a much wider public than ever before.""",
    """# Review: A Quiet Mechanical Keyboard That Is Worth the Price
Mechanical keyboards are often loud, which can be a problem in shared offices. The model tested here uses dampened switches that keep the satisfying feel of a mechanical key while cutting the noise noticeably.
## Build and typing feel
The aluminium case is heavy and does not flex, even when pressed firmly in the middle. Each key needs a light touch, and the dampening rings soften the sound when a key hits the bottom.
## Battery life and connections
The keyboard connects by cable or over wireless to up to three devices. With the backlight off, the battery lasted almost five weeks of daily use in our test.
The main drawback is the companion software, which is slow and only available for one operating system. Still, for people who type all day, it is one of the best options in its price range.""",
    """# Why Leaves Change Colour in Autumn
Every autumn, forests in temperate regions turn yellow, orange and red. The colours come from chemistry inside the leaves that is hidden for most of the year.
## Chlorophyll fades
During the growing season, leaves are full of chlorophyll, the green pigment that captures sunlight for photosynthesis. As days become shorter and cooler, trees stop producing it, and the green slowly disappears.
## Hidden and new pigments
Yellow and orange pigments called carotenoids are present in the leaf all summer but are masked by the green. When the chlorophyll breaks down, they become visible.
Red colours come from anthocyanins, which some trees produce in autumn. Sunny days and cool nights increase their production, which is why some years are more colourful than others.""",
    """# Small Libraries Turn to Seed Lending
A growing number of small public libraries now lend seeds as well as books. Members can take a packet of vegetable or flower seeds in spring and are asked to return seeds from their own harvest in autumn.
## How a seed library works
Seeds are stored in old card catalogue drawers, sorted by plant type and by how easy they are to grow. Volunteers run workshops on saving seeds, explaining which plants cross-pollinate and how to dry the seeds properly.
## Building local varieties
Over several seasons, seeds saved from plants that did well in local gardens can become better suited to the local climate. Librarians say the programme also brings in visitors who had not used the library for years.""",
    """# A Beginner's Guide to Running Your First 5K
Running five kilometres is a realistic goal for most healthy adults, even those who have never run before. A gradual plan over eight weeks reduces the risk of injury and keeps motivation high.
## Start with walking and running
In the first weeks, alternate one minute of easy running with two minutes of walking for about twenty minutes. Three sessions a week, with rest days in between, are enough.
## Increase slowly
Each week, lengthen the running intervals and shorten the walking breaks. A good rule is to increase total running time by no more than ten percent from one week to the next.
Comfortable shoes matter more than expensive gear. If a pain does not go away after a few days of rest, see a doctor before running again.""",
    """# The History of the Humble Paperclip
The paperclip is so common that few people think about where it came from. Yet the familiar double-loop design took decades of trial and error to appear.
## Many early designs
In the late nineteenth century, inventors in several countries patented wire clips for holding papers together. Many of them had sharp ends that tore the paper or were difficult to slide on.
## The winning shape
The design used today, with two rounded loops, became popular around the beginning of the twentieth century. It holds paper firmly, does not tear it and can be made cheaply by machines bending steel wire.
The paperclip has since become a symbol of simple, effective design, and it even appears as an icon in many computer programs.""",
    """# Rising Sea Levels Threaten Coastal Wetlands
Coastal wetlands protect shorelines from storms and provide nurseries for fish, but rising seas are pushing many of them toward open water. Scientists are studying how these ecosystems can move inland.
## Marshes need room to migrate
Salt marshes can keep pace with slowly rising water by trapping sediment and building up soil. When the sea rises too fast, or when roads and sea walls block their path, the marshes drown instead of moving.
## Restoration projects
Some regions are buying low-lying farmland next to marshes so that wetlands have space to spread. Others are adding sediment dredged from shipping channels to raise the level of existing marshes.
Researchers say that early planning is cheaper than rebuilding damaged coastlines after major storms.""",
    """# Tips for Photographing the Night Sky
With a steady tripod and a camera that allows manual settings, you can take striking photographs of stars and the Milky Way. The most important ingredient is darkness.
## Find a dark location
Light from cities washes out faint stars. Check a light pollution map and drive at least an hour away from large towns. Nights without a bright moon give the best results.
## Camera settings
Use a wide-angle lens at its widest aperture, set the focus manually to infinity and start with an exposure of about fifteen seconds. Longer exposures turn stars into short streaks because the Earth rotates.
Take many test shots and check them on the screen at full magnification. Small adjustments to focus make a large difference.""",
    """# What Makes a Good Password in 2024
Passwords remain the most common way to protect online accounts, and many are still easy to guess. Security experts now recommend length over complexity.
## Use long passphrases
A phrase of four or five unrelated words is easier to remember and harder to crack than a short password full of symbols. Avoid famous quotes and song lyrics, which attackers try early.
## Never reuse passwords
When one website is breached, attackers try the stolen passwords on other sites. A password manager can create and store a different password for every account.
Turning on two-factor authentication adds a second check, such as a code from an app, and stops most attacks even when a password is stolen.""",
    """# The Lighthouse Keepers of the Northern Coast
For more than a century, lighthouse keepers lived in isolated stations along the northern coast, keeping the lamps burning through long winter nights.
## A demanding routine
Keepers trimmed wicks, polished lenses and wound the clockwork that turned the light every few hours. In storms they stayed awake all night, recording weather and ships in the logbook.
## Automation and memory
By the 1980s, automatic lamps had replaced the last keepers. Several stations are now museums, where former keepers and their children tell visitors about daily life on the rocks.
Their logbooks, kept in regional archives, have become a valuable record of weather and shipping on the coast over many decades.""",
    """# How Vaccines Train the Immune System
Vaccines prepare the body to fight an infection before it ever meets the real germ. They do this by showing the immune system a harmless piece or copy of the pathogen.
## Learning to recognise the enemy
When a vaccine is given, immune cells recognise the unfamiliar proteins and produce antibodies against them. Some of these cells become memory cells that can last for years.
## A faster response later
If the vaccinated person is later exposed to the real pathogen, the memory cells react quickly and produce large amounts of antibodies. The infection is often stopped before it causes serious illness.
Some vaccines need booster doses because the memory fades over time, or because the virus changes and the immune system needs an updated picture.""",
    """# Repair Cafés Give Broken Things a Second Life
At a community hall on Saturday mornings, volunteers with screwdrivers and soldering irons help neighbours fix toasters, lamps, bicycles and torn clothes. Repair cafés like this one have spread to hundreds of towns.
## Learning by fixing
Visitors are expected to stay and watch, and often help with the repair. Volunteers explain what went wrong, so that people can fix similar problems themselves next time.
## Less waste, more skills
Organisers estimate that about two thirds of the items brought in are repaired successfully. Besides keeping waste out of landfill, the events bring together people of different ages who share practical knowledge.""",
    """# Understanding Compound Interest
Compound interest means earning interest not only on the money you save, but also on the interest that has already been added. Over long periods, the effect becomes very large.
## A simple example
If you save one thousand dollars at five percent a year, you earn fifty dollars in the first year. In the second year you earn interest on one thousand and fifty dollars, and so on. After thirty years the balance is more than four times the original amount.
## Time matters most
Because growth builds on itself, starting early matters more than the exact rate. Someone who saves a small amount from their twenties can end up with more than someone who saves twice as much but starts fifteen years later.
The same principle works against borrowers, which is why credit card debt can grow so quickly when only the minimum is paid.""",
    """# Octopuses: Clever Animals Without a Backbone
Octopuses are among the most intelligent invertebrates. In experiments they open jars, find their way through mazes and recognise individual people.
## A distributed brain
An octopus has about five hundred million neurons, and most of them are in its eight arms rather than its head. Each arm can taste and touch on its own, while the central brain coordinates the animal's overall behaviour.
## Masters of disguise
Special cells in the skin let octopuses change colour and texture within a fraction of a second. They use this ability to hide from predators, to sneak up on prey and possibly to signal to each other.
Most octopuses live only one or two years, which makes their ability to learn so quickly all the more remarkable.""",
]
