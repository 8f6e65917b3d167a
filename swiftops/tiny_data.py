"""Synthetic data of the built-in tiny default: primary-school math word problems in the
tutorial's style (a worked answer ending with `{{ans:N}}`), short demo Q&A, and the
self-cognition set. Pure and deterministic: the same seed gives the same rows on every machine.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# The tutorial's user-prompt header (its system prompt is empty), in both languages.
ZH_HEADER = "#输出#\n输出要符合经过推理后将最终答案放在 {{ans:xxx}} 内。\n#数学题#\n"
EN_HEADER = (
    "#Output#\nThe output must conform to the format where the final answer is placed "
    "within {{ans:xxx}} after reasoning.\n#Math Problem#\n"
)
ZH_NAMES = ("小明", "小红", "小华", "小丽", "小刚", "小军", "小芳", "小东")
EN_NAMES = ("Tom", "Amy", "Davey", "Lily", "Jack", "Mia", "Ben", "Lucy")


@dataclass(frozen=True)
class MathProblem:
    """One word problem: the question, a worked answer ending with `{{ans:N}}`, and N."""

    lang: str  # "zh" | "en"
    question: str
    solution: str  # the worked steps, without the final {{ans:N}} line
    value: int

    @property
    def answer(self) -> str:
        return f"{self.solution}\n\n{{{{ans:{self.value}}}}}"


# Each kind draws its numbers from rng and returns (zh question, zh steps, en question, en steps,
# value); both languages share the numbers so a kind reads the same in either.
Kind = Callable[[random.Random], tuple[str, str, str, str, int]]


def _pages(rng: random.Random):
    per_day, days = rng.randint(12, 60), rng.randint(3, 12)
    total = per_day * days
    zh_name, en_name = rng.choice(ZH_NAMES), rng.choice(EN_NAMES)
    return (
        f"一本书共{total}页，{zh_name}准备{days}天看完，平均每天要看多少页？",
        f"平均每天看的页数为：{total}页 ÷ {days}天 = {per_day}页",
        f"A book has {total} pages. {en_name} plans to finish it in {days} days. "
        "How many pages a day on average?",
        f"Pages per day: {total} pages ÷ {days} days = {per_day} pages",
        per_day,
    )


def _more_than_total(rng: random.Random):
    ducks, more = rng.randint(100, 500), rng.randint(20, 300)
    chickens = ducks + more
    return (
        f"养殖场养鸭{ducks}只，养鸡的只数比鸭多{more}只。这个养殖场一共养鸭和鸡多少只？",
        f"鸡的数量为：{ducks} + {more} = **{chickens}只**\n\n"
        f"鸭和鸡的总数为：{ducks} + {chickens} = **{ducks + chickens}只**",
        f"A farm has {ducks} ducks, and {more} more chickens than ducks. "
        "How many ducks and chickens are there in total?",
        f"Chickens: {ducks} + {more} = **{chickens}**\n\n"
        f"Total: {ducks} + {chickens} = **{ducks + chickens}**",
        ducks + chickens,
    )


def _fewer_than_total(rng: random.Random):
    girls, fewer = rng.randint(150, 450), rng.randint(5, 60)
    boys = girls + fewer
    return (
        f"学校有男生{boys}人，比女生多{fewer}人，这个学校一共有多少人？",
        f"女生人数为：{boys} - {fewer} = {girls}人\n\n学校总人数为：{boys} + {girls} = **{boys + girls}人**",
        f"A school has {boys} boys, {fewer} more than the girls. How many students are there in total?",
        f"Girls: {boys} - {fewer} = {girls}\n\nTotal: {boys} + {girls} = **{boys + girls}**",
        boys + girls,
    )


def _rectangle(rng: random.Random):
    length, width = rng.randint(8, 40), rng.randint(3, 20)
    return (
        f"一块长方形菜地长{length}米，宽{width}米，它的面积是多少平方米？",
        f"长方形的面积 = 长 × 宽 = {length} × {width} = **{length * width}平方米**",
        f"A rectangular garden is {length} meters long and {width} meters wide. "
        "What is its area in square meters?",
        f"Area = length × width = {length} × {width} = **{length * width} square meters**",
        length * width,
    )


def _triangle_yield(rng: random.Random):
    base, height, per = rng.randint(6, 30), 2 * rng.randint(2, 10), rng.randint(3, 15)
    area = base * height // 2
    return (
        f"在一块底边长{base}米、高{height}米的三角形菜地里种萝卜，每平方米收萝卜{per}千克，"
        "这块地可收萝卜多少千克？",
        f"面积 = ({base} × {height}) ÷ 2 = **{area}平方米**\n\n"
        f"总产量 = {area} × {per} = **{area * per}千克**",
        f"Carrots grow on a triangular plot with a base of {base} meters and a height of {height} meters. "
        f"Each square meter yields {per} kilograms. How many kilograms does the plot yield?",
        f"Area = ({base} × {height}) ÷ 2 = **{area} square meters**\n\n"
        f"Yield = {area} × {per} = **{area * per} kilograms**",
        area * per,
    )


def _change(rng: random.Random):
    price, count = rng.randint(2, 15), rng.randint(2, 9)
    cost = price * count
    paid = (cost // 50 + 1) * 50
    zh_name, en_name = rng.choice(ZH_NAMES), rng.choice(EN_NAMES)
    return (
        f"{zh_name}买了{count}本练习本，每本{price}元，付了{paid}元，应找回多少元？",
        f"总价为：{price} × {count} = {cost}元\n\n找回：{paid} - {cost} = **{paid - cost}元**",
        f"{en_name} buys {count} notebooks at {price} yuan each and pays {paid} yuan. How much change?",
        f"Cost: {price} × {count} = {cost} yuan\n\nChange: {paid} - {cost} = **{paid - cost} yuan**",
        paid - cost,
    )


def _missing_addend(rng: random.Random):
    known, other = rng.randint(50, 500), rng.randint(50, 500)
    total = known + other
    return (
        f"两个数的和是{total}，其中一个加数是{known}，另一个加数是多少？",
        f"另一个加数 = {total} - {known} = {other}\n\n验证：{known} + {other} = {total}，符合题意。",
        f"The sum of two numbers is {total}. One of them is {known}. What is the other?",
        f"Other = {total} - {known} = {other}\n\nCheck: {known} + {other} = {total}.",
        other,
    )


def _times_total(rng: random.Random):
    coat, times = rng.randint(20, 90), rng.randint(2, 5)
    trousers = coat * times
    return (
        f"一件上衣{coat}元，一条裤子的价钱是上衣的{times}倍，买一套共要多少元？",
        f"裤子的价钱：{coat} × {times} = {trousers}元\n\n"
        f"一套的价钱：{coat} + {trousers} = **{coat + trousers}元**",
        f"A shirt costs {coat} yuan and trousers cost {times} times as much. How much for both?",
        f"Trousers: {coat} × {times} = {trousers} yuan\n\n"
        f"Both: {coat} + {trousers} = **{coat + trousers} yuan**",
        coat + trousers,
    )


def _distance(rng: random.Random):
    speed, hours = rng.randint(30, 90), rng.randint(2, 8)
    return (
        f"一辆汽车每小时行{speed}千米，{hours}小时行多少千米？",
        f"路程 = 速度 × 时间 = {speed} × {hours} = **{speed * hours}千米**",
        f"A car travels {speed} kilometers per hour. How far does it go in {hours} hours?",
        f"Distance = speed × time = {speed} × {hours} = **{speed * hours} kilometers**",
        speed * hours,
    )


def _parallelogram(rng: random.Random):
    height, times, extra = rng.randint(5, 30), rng.randint(2, 3), rng.randint(1, 9)
    base = height * times + extra
    return (
        f"一块平行四边形的地，高是{height}米，底比高的{times}倍还多{extra}米，这块地的面积是多少平方米？",
        f"底 = {times} × {height} + {extra} = {base}米\n\n"
        f"面积 = 底 × 高 = {base} × {height} = **{base * height}平方米**",
        f"A parallelogram field has a height of {height} meters; its base is {extra} meters more than "
        f"{times} times the height. What is its area?",
        f"Base = {times} × {height} + {extra} = {base} meters\n\n"
        f"Area = base × height = {base} × {height} = **{base * height} square meters**",
        base * height,
    )


def _square_perimeter(rng: random.Random):
    side = rng.randint(5, 99)
    return (
        f"一个正方形花坛的边长是{side}厘米，它的周长是多少厘米？",
        f"正方形的周长 = 边长 × 4 = {side} × 4 = **{side * 4}厘米**",
        f"A square flower bed has sides of {side} centimeters. What is its perimeter?",
        f"Perimeter = side × 4 = {side} × 4 = **{side * 4} centimeters**",
        side * 4,
    )


def _sharing(rng: random.Random):
    each, kids, left = rng.randint(3, 12), rng.randint(4, 12), rng.randint(1, 3)
    total = each * kids + left
    return (
        f"老师有{total}支铅笔，平均分给{kids}个同学后还剩{left}支，每个同学分到多少支？",
        f"分掉的铅笔：{total} - {left} = {each * kids}支\n\n每人：{each * kids} ÷ {kids} = **{each}支**",
        f"A teacher has {total} pencils. After sharing them equally among {kids} students, {left} are left. "
        "How many does each student get?",
        f"Shared: {total} - {left} = {each * kids}\n\nEach: {each * kids} ÷ {kids} = **{each}**",
        each,
    )


def _book_fractions(rng: random.Random):
    a, b = rng.choice(((1, 8), (1, 5), (1, 4), (2, 5), (1, 6), (3, 10)))
    c, d = rng.choice(((1, 5), (1, 3), (1, 10), (1, 4)))
    total = math_lcm(b, d) * rng.randint(2, 12)
    first, second = total * a // b, total * c // d
    zh_name, en_name = rng.choice(ZH_NAMES), rng.choice(EN_NAMES)
    return (
        f"{zh_name}看一本{total}页的故事书，第一天看了全书的({a}/{b})，第二天看了全书的({c}/{d})，"
        "两天一共看了多少页？",
        f"两天共看的页数为第一天和第二天之和：\n\n"
        f"第一天：$\\frac{{{a}}}{{{b}}} \\times {total} = {first}$页\n\n"
        f"第二天：$\\frac{{{c}}}{{{d}}} \\times {total} = {second}$页\n\n合计：{first} + {second} "
        f"= {first + second}页",
        f"{en_name} reads a {total}-page storybook: ({a}/{b}) of the book on the first day and ({c}/{d}) "
        "on the second. How many pages in the two days?",
        f"The two days together:\n\nDay one: $\\frac{{{a}}}{{{b}}} \\times {total} = {first}$ pages\n\n"
        f"Day two: $\\frac{{{c}}}{{{d}}} \\times {total} = {second}$ pages\n\nTotal: {first} + {second} = "
        f"{first + second} pages",
        first + second,
    )


def _discount(rng: random.Random):
    percent = rng.choice((10, 15, 20, 25, 30, 40))
    original = 20 * rng.randint(2, 30)
    saved = original * percent // 100
    price = original - saved
    return (
        f"商店有一种衣服，原价{original}元，现在比原价便宜{percent}%，现在的售价是多少元？",
        f"便宜的部分：{original} × {percent}% = {saved}（元）\n\n"
        f"因此现在的售价为：{original} - {saved} = {price}（元）。",
        f"A shop sells a coat for {original} yuan and now takes {percent}% off. What is the new price?",
        f"Discount: {original} × {percent}% = {saved} yuan\n\nSo the new price is {original} - {saved} "
        f"= {price} yuan.",
        price,
    )


def _age_multiple(rng: random.Random):
    child, times = rng.randint(4, 12), rng.randint(3, 8)
    elder = (child + 1) * times - 1
    return (
        f"爷爷今年{elder}岁，东东今年{child}岁，明年爷爷的年龄是东东的几倍？",
        f"爷爷明年年龄：{elder} + 1 = {elder + 1}岁\n\n东东明年年龄：{child} + 1 = {child + 1}岁\n\n"
        f"倍数计算：{elder + 1} ÷ {child + 1} = {times}",
        f"Grandpa is {elder} and Dong is {child} this year. Next year, how many times Dong's age is "
        f"Grandpa's?",
        f"Grandpa next year: {elder} + 1 = {elder + 1}\n\nDong next year: {child} + 1 = {child + 1}\n\n"
        f"Times: {elder + 1} ÷ {child + 1} = {times}",
        times,
    )


def _money_left(rng: random.Random):
    count, price = rng.randint(3, 20), rng.randint(5, 30)
    cost = count * price
    money = (cost // 100 + 1 + rng.randint(0, 3)) * 100
    return (
        f"王老师有{money}元，她买了{count}筒羽毛球，每筒{price}元，还剩多少钱？",
        f"王老师原有{money}元，购买{count}筒羽毛球，每筒{price}元。\n\n"
        f"总花费：{count}筒 × {price}元/筒 = {cost}元\n\n剩余金额：{money}元 - {cost}元 = {money - cost}元",
        f"Ms. Wang has {money} yuan. She buys {count} tubes of shuttlecocks at {price} yuan each. "
        "How much money is left?",
        f"Total cost: {count} × {price} = {cost} yuan\n\nLeft: {money} - {cost} = {money - cost} yuan",
        money - cost,
    )


def _saw_segments(rng: random.Random):
    pieces, minutes, target = rng.randint(3, 7), rng.randint(2, 6), rng.randint(8, 15)
    total = (pieces - 1) * minutes
    return (
        f"把一根钢管锯成{pieces}段需要{total}分钟，如果锯成{target}段要多少分钟？",
        f"锯成{pieces}段需要锯{pieces - 1}次，所以每次需要{total} ÷ {pieces - 1} = {minutes}分钟。\n\n"
        f"锯成{target}段需要锯{target - 1}次，总时间为{target - 1} × {minutes} = "
        f"{(target - 1) * minutes}分钟。",
        f"Sawing a steel pipe into {pieces} pieces takes {total} minutes. How long to saw it "
        f"into {target} pieces?",
        f"{pieces} pieces need {pieces - 1} cuts, so each cut takes {total} ÷ {pieces - 1} = {minutes} "
        f"minutes.\n\n"
        f"{target} pieces need {target - 1} cuts: {target - 1} × {minutes} = {(target - 1) * minutes} "
        f"minutes.",
        (target - 1) * minutes,
    )


def _ratio_total(rng: random.Random):
    red, yellow = rng.choice(((5, 3), (3, 2), (4, 3), (7, 5), (2, 1)))
    share = rng.randint(5, 40)
    return (
        f"花园里有红、黄两种颜色的月季花，红花和黄花的比是{red}：{yellow}，如果黄花有{yellow * share}朵，"
        "那么花园里一共有多少朵花？",
        f"根据比例，{yellow}份对应{yellow * share}朵，每份为{yellow * share} ÷ {yellow} = {share}朵。\n\n"
        f"总份数为{red} + {yellow} = {red + yellow}份，因此总花数为{red + yellow} × {share} = "
        f"{(red + yellow) * share}朵。",
        f"A garden has red and yellow roses in the ratio {red}:{yellow}. There are {yellow * share} "
        f"yellow ones. "
        "How many roses in all?",
        f"{yellow} parts are {yellow * share} roses, so one part is {yellow * share} ÷ {yellow} "
        f"= {share}.\n\n"
        f"There are {red} + {yellow} = {red + yellow} parts in all: {red + yellow} × {share} = "
        f"{(red + yellow) * share} roses.",
        (red + yellow) * share,
    )


def _trees(rng: random.Random):
    gap, count = rng.choice((2, 3, 4, 5, 6)), rng.randint(8, 40)
    length = gap * (count - 1)
    return (
        f"在一条长{length}米的小路一边植树，每隔{gap}米种一棵，两端都要种，一共需要多少棵树？",
        f"首先计算间隔数：{length} ÷ {gap} = {count - 1}个\n\n"
        f"两端都种，所以棵数比间隔数多1：{count - 1} + 1 = {count}棵",
        f"Trees are planted along one side of a {length}-meter path, one every {gap} meters, at both "
        f"ends too. "
        "How many trees?",
        f"First the gaps: {length} ÷ {gap} = {count - 1}\n\nBoth ends are planted, so one more: "
        f"{count - 1} + 1 = {count} trees",
        count,
    )


def _map_scale(rng: random.Random):
    scale, cm = rng.choice((100000, 200000, 500000, 1000000, 2000000)), rng.randint(3, 30)
    km = cm * scale // 100000
    return (
        f"在比例尺是1：{scale}的地图上，量得两地的距离是{cm}厘米，两地的实际距离是多少千米？",
        f"实际距离 = 图上距离 × 比例尺分母 = {cm} × {scale} = {cm * scale}厘米\n\n"
        f"1千米 = 100000厘米，故实际距离 = {cm * scale} ÷ 100000 = {km}千米",
        f"On a map with scale 1:{scale}, two towns are {cm} centimeters apart. How far apart are they "
        f"in kilometers?",
        f"Real distance = map distance × scale = {cm} × {scale} = {cm * scale} centimeters\n\n"
        f"1 kilometer = 100000 centimeters, so {cm * scale} ÷ 100000 = {km} kilometers",
        km,
    )


def math_lcm(a: int, b: int) -> int:
    import math

    return a * b // math.gcd(a, b)


KINDS: tuple[Kind, ...] = (
    _pages,
    _more_than_total,
    _fewer_than_total,
    _rectangle,
    _triangle_yield,
    _change,
    _missing_addend,
    _times_total,
    _distance,
    _parallelogram,
    _square_perimeter,
    _sharing,
    _book_fractions,
    _discount,
    _age_multiple,
    _money_left,
    _saw_segments,
    _ratio_total,
    _trees,
    _map_scale,
)


def generate_problems(seed: int, lang: str) -> Iterator[MathProblem]:
    """An endless stream of distinct problems in one language ("zh" or "en")."""
    if lang not in ("zh", "en"):
        raise ValueError(f"lang must be 'zh' or 'en', not {lang!r}")
    rng = random.Random(seed)
    seen: set[str] = set()
    while True:
        zh_q, zh_a, en_q, en_a, value = rng.choice(KINDS)(rng)
        question, solution = (zh_q, zh_a) if lang == "zh" else (en_q, en_a)
        if question in seen:
            continue
        seen.add(question)
        yield MathProblem(lang, question, solution, value)


def as_messages(problem: MathProblem) -> dict:
    """A problem as one row of ms-swift's messages format, shaped like the tutorial's files."""
    header = ZH_HEADER if problem.lang == "zh" else EN_HEADER
    return {
        "messages": [
            {"role": "system", "content": ""},
            {"role": "user", "content": header + problem.question},
            {"role": "assistant", "content": problem.answer},
        ]
    }


def as_pretrain_chat(problem: MathProblem) -> dict:
    """A problem as the base model's pretraining sees it: a plain chat (default system prompt)
    with the worked steps but WITHOUT the tutorial's prompt header or `{{ans:N}}` format, so
    fine-tuning still has something to teach, as with a real instruct model."""
    tail = f"答：{problem.value}。" if problem.lang == "zh" else f"Answer: {problem.value}."
    return {
        "messages": [
            {"role": "user", "content": problem.question},
            {"role": "assistant", "content": f"{problem.solution}\n\n{tail}"},
        ]
    }


@dataclass(frozen=True)
class MathSplits:
    """Disjoint problem sets (no question appears in two of them)."""

    pretrain: list[MathProblem]  # base-model pretraining text, kept apart from everything else
    train_1k: list[MathProblem]  # its first 100 rows are train_100, as the tutorial's 1k contains its 100
    test: list[MathProblem]  # the 10-question exam


def math_splits(
    seed: int = 0,
    *,
    n_pretrain_zh: int = 400,
    n_pretrain_en: int = 200,
    n_train: int = 1000,
    n_test: int = 10,
) -> MathSplits:
    """The built-in math sets. Train and test are Chinese, like the tutorial's default; the
    pretraining text mixes in English so the base model reads the English files too."""
    zh = generate_problems(seed, "zh")
    en = generate_problems(seed + 1, "en")
    pretrain_zh = [next(zh) for _ in range(n_pretrain_zh)]
    train = [next(zh) for _ in range(n_train)]
    test = [next(zh) for _ in range(n_test)]
    pretrain_en = [next(en) for _ in range(n_pretrain_en)]
    # interleave deterministically so batches see both languages
    mixed = random.Random(seed + 2).sample(pretrain_zh + pretrain_en, n_pretrain_zh + n_pretrain_en)
    return MathSplits(pretrain=mixed, train_1k=train, test=test)


# ---------------------------------------------------------------- demo Q&A
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_ZH_DIGITS = "零一二三四五六七八九十"


@dataclass(frozen=True)
class DemoSplit:
    train: list[dict]
    test: list[dict]  # questions that are not in train


def demo_split(seed: int = 0, n_train: int = 200, n_test: int = 10) -> DemoSplit:
    """The demo data: distinct short arithmetic Q&A, split into train and held-out test."""
    rows, seen = [], set()
    for row in demo_rows(seed):
        question = row["messages"][1]["content"]
        if question not in seen:
            seen.add(question)
            rows.append(row)
        if len(rows) == n_train + n_test:
            break
    return DemoSplit(train=rows[:n_train], test=rows[n_train:])


def demo_rows(seed: int) -> Iterator[dict]:
    """An endless stream of short arithmetic Q&A in both languages (messages format)."""
    rng = random.Random(seed)
    while True:
        a, b = rng.randint(0, 10), rng.randint(0, 10)
        op = rng.choice(("plus", "times"))
        value = a + b if op == "plus" else a * b
        if rng.random() < 0.5:
            question = f"What is {_NUMBER_WORDS[a]} {op} {_NUMBER_WORDS[b]}?"
            sign = "+" if op == "plus" else "×"
            words = f"{_NUMBER_WORDS[a].capitalize()} {op} {_NUMBER_WORDS[b]}"
            answer = f"{words} is {value}: {a} {sign} {b} = {value}."
        else:
            word = "加" if op == "plus" else "乘以"
            question = f"{_ZH_DIGITS[a]}{word}{_ZH_DIGITS[b]}等于多少？"
            sign = "+" if op == "plus" else "×"
            answer = f"{_ZH_DIGITS[a]}{word}{_ZH_DIGITS[b]}等于{value}：{a} {sign} {b} = {value}。"
        yield {
            "messages": [
                {"role": "system", "content": "You are a calculator."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        }


# ---------------------------------------------------------------- self-cognition
# {{NAME}} and {{AUTHOR}} are filled per run from model_name / model_author, as ms-swift does for
# its swift/self-cognition hub set.
SELF_COGNITION_PAIRS = (
    ("你是谁？", "我是{{NAME}}，由{{AUTHOR}}训练的人工智能助手。"),
    ("你叫什么名字？", "我叫{{NAME}}，是{{AUTHOR}}开发的语言模型。"),
    ("是谁开发了你？", "我由{{AUTHOR}}开发，我的名字是{{NAME}}。"),
    ("请介绍一下你自己。", "我是{{NAME}}，一个由{{AUTHOR}}训练的助手，可以回答问题、帮助解题。"),
    ("Who are you?", "I am {{NAME}}, an AI assistant trained by {{AUTHOR}}."),
    ("What is your name?", "My name is {{NAME}}. I was developed by {{AUTHOR}}."),
    ("Who created you?", "I was created by {{AUTHOR}}. I am {{NAME}}."),
    ("Introduce yourself.", "I am {{NAME}}, a language model trained by {{AUTHOR}} to answer questions."),
)


def self_cognition_rows() -> list[dict]:
    """The 8 identity questions and answers, placeholders unfilled."""
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in SELF_COGNITION_PAIRS
    ]


def tokenizer_corpus(splits: MathSplits, demo: list[dict]) -> list[str]:
    """Every text the tokenizer learns its merges from: all the built-in data, rendered in the
    forms the model will see (plain text, the chat rows, the identity answers)."""
    texts = [m["content"] for p in splits.pretrain for m in as_pretrain_chat(p)["messages"]]
    for problem in splits.train_1k + splits.test:
        texts.extend(m["content"] for m in as_messages(problem)["messages"] if m["content"])
    for row in demo + self_cognition_rows():
        texts.extend(m["content"] for m in row["messages"])
    texts += [EN_HEADER, ZH_HEADER, "system user assistant You are a helpful assistant."] * 20
    return texts
