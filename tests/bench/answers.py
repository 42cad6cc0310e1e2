"""Realistic stored answers for the bundled consumer survey, as `validate` leaves them."""

from __future__ import annotations

import random
from typing import Any

from server.forms import Form, load_form
from server.validate import validate
from tests.bench.serving import BUNDLED_FORMS, SUBMIT_FORM

TROUBLES = [
    "网购的充电宝用了两周就鼓包发热",
    "孩子的书包拉链一个月就坏了，客服一直推脱",
    "买的儿童玩具有很重的气味，说明书没有中文",
    "文具盒边缘很锋利，把孩子的手划破了",
    "网上买的电热水壶和图片不一样，底座漏电",
]
OTHER_CHANNELS = ["社区公告栏", "村里的广播", "单位培训", "12315 微信公众号"]
OTHER_CONCERNS = ["化妆品", "农资（化肥、农药）", "燃气灶具"]
DOMAINS = ["qq.com", "163.com", "126.com", "sina.cn", "hainan.gov.cn"]


def form() -> Form:
    return load_form(BUNDLED_FORMS / f"{SUBMIT_FORM}.toml")


def _posted(rng: random.Random) -> dict[str, list[str]]:
    """What a resident might post: the survey's questions, answered as a person would."""
    data: dict[str, list[str]] = {
        "fangxin_aware": [rng.choice(["know_well", "heard", "never"])],
        "know_12315": [rng.choice(["used", "known", "known", "unknown"])],
        "had_problem": [rng.choice(["yes", "no", "no", "unsure"])],
    }
    if data["know_12315"][0] != "unknown":
        data["how_known_12315"] = rng.sample(["tv", "online", "event", "people", "shop"], rng.randint(1, 3))
        if rng.random() < 0.1:
            data["how_known_12315"].append("other")
            data["how_known_12315_other"] = [rng.choice(OTHER_CHANNELS)]
    if data["know_12315"][0] == "used":
        data["rating_12315"] = [str(rng.randint(1, 5))]
    concerns = ["food", "elevator", "fuel", "children", "student", "appliance", "online"]
    data["concerns"] = rng.sample(concerns, rng.randint(1, 3))
    if rng.random() < 0.05:
        data["concerns"][-1] = "other"
        data["concerns_other"] = [rng.choice(OTHER_CONCERNS)]
    if "food" in data["concerns"]:
        data["food_worry"] = rng.sample(["expired", "additives", "fake", "label"], rng.randint(1, 2))
    if {"online", "children", "student"} & set(data["concerns"]) and rng.random() < 0.4:
        data["online_trouble"] = [rng.choice(TROUBLES)]
    if rng.random() < 0.7:
        data["monthly_spend"] = [str(rng.choice([500, 800, 1200, 1500, 2000, 3000, 4500.5]))]
    if data["had_problem"][0] == "yes":
        data["what_did"] = [rng.choice(["hotline", "seller", "seller", "nothing"])]
        if data["know_12315"][0] != "used":
            data["next_time_12315"] = [rng.choice(["yes", "maybe", "no"])]
    if rng.random() < 0.2:
        data["email"] = [
            f"{rng.choice(['wang', 'li', 'chen', 'lin', 'fu'])}{rng.randint(1, 9999)}@{rng.choice(DOMAINS)}"
        ]
        data["_consent"] = ["yes"]
    return data


def variety(count: int, seed: int = 2022) -> list[dict[str, Any]]:
    """count different valid answer sets, checked by the product's own validation."""
    rng = random.Random(seed)
    survey = form()
    result = []
    while len(result) < count:
        outcome = validate(survey, _posted(rng))
        if not outcome.ok:
            raise AssertionError(f"bench answers are not valid: {outcome.errors}")
        result.append(outcome.answers)
    return result
