"""The report categories (Open311 "services"): Vietnamese and English names, optional attributes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Attribute:
    """An Open311 service attribute (``attribute[code]=value`` in a request)."""

    code: str
    datatype: str  # "singlevaluelist" or "string"
    description_vi: str
    description_en: str
    values: tuple[tuple[str, str, str], ...] = ()  # (key, Vietnamese name, English name)
    required: bool = False


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    name_vi: str
    name_en: str
    description_vi: str
    description_en: str
    keywords: tuple[str, ...]
    attributes: tuple[Attribute, ...] = field(default=())

    def name(self, lang: str) -> str:
        return self.name_en if lang == "en" else self.name_vi

    def description(self, lang: str) -> str:
        return self.description_en if lang == "en" else self.description_vi


_WHEN = Attribute(
    code="when",
    datatype="singlevaluelist",
    description_vi="Sự việc còn đang diễn ra?",
    description_en="Is it still happening?",
    values=(("now", "Đang diễn ra", "Happening now"), ("past", "Đã xảy ra", "Already over")),
)

SERVICES: dict[str, Service] = {
    s.code: s
    for s in (
        Service(
            code="security",
            name_vi="An ninh trật tự",
            name_en="Security and public order",
            description_vi="Trộm cắp, gây rối, người lạ khả nghi, tụ tập đông người",
            description_en="Theft, disturbances, suspicious people, crowds",
            keywords=("an ninh", "trộm", "security", "theft"),
            attributes=(_WHEN,),
        ),
        Service(
            code="environment",
            name_vi="Vệ sinh môi trường",
            name_en="Environment and sanitation",
            description_vi="Rác thải, ngập nước, tiếng ồn, cây đổ",
            description_en="Rubbish, flooding, noise, fallen trees",
            keywords=("rác", "ngập", "garbage", "flooding"),
        ),
        Service(
            code="traffic",
            name_vi="Giao thông",
            name_en="Traffic",
            description_vi="Đèn giao thông hỏng, lấn chiếm lòng lề đường, tai nạn, ùn tắc",
            description_en="Broken traffic lights, blocked pavements, accidents, congestion",
            keywords=("giao thông", "kẹt xe", "traffic", "accident"),
            attributes=(_WHEN,),
        ),
    )
}
