# ruff: noqa: E501 - the page's CSS and script are kept as written, one rule or statement a line
"""The signage page: server-rendered HTML for electronic boards, updated live by a tiny inline script.

Large type, white on black, one colour per level (with the level's words, so the
page also reads without colour), Vietnamese first and English below. Two layouts:
``landscape`` (1920x1080, segments in two columns) and ``portrait`` (1080x1920, one
column); sizes are in viewport units so other screens scale. The script listens to
``/public/traffic/stream`` and rewrites each segment card; if no message came for
``stale_after_s`` (link or server down) every card shows "Không có dữ liệu / No
data" rather than old numbers. Without JavaScript, the page reloads every 30 s.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from events.congestion import LEVEL_LABELS, Level

_CSS = """
*{box-sizing:border-box;margin:0;padding:0}
html,body{background:#000;color:#fff;font-family:"Liberation Sans",Arial,Helvetica,sans-serif;height:100%}
body{display:flex;flex-direction:column;padding:2vmin 2.5vmin;gap:2vmin}
header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:.4vmin solid #fff;padding-bottom:1vmin}
h1{font-size:5.2vmin;font-weight:700}
h1 small{display:block;font-size:3vmin;font-weight:400;color:#ddd}
#clock{font-size:6vmin;font-weight:700;font-variant-numeric:tabular-nums}
main{flex:1;display:grid;gap:2vmin;grid-auto-rows:1fr}
body.landscape main{grid-template-columns:1fr 1fr}
body.portrait main{grid-template-columns:1fr}
.seg{display:flex;flex-direction:column;justify-content:space-between;border:.6vmin solid #fff;
  border-left-width:3vmin;padding:1.6vmin 2.4vmin;min-height:0;overflow:hidden}
.name{font-size:5vmin;font-weight:700;line-height:1.1}
.name_en{font-size:2.8vmin;color:#ddd}
.state{display:flex;justify-content:space-between;align-items:flex-end;gap:2vmin}
.level{font-size:6.5vmin;font-weight:700;line-height:1.05}
.level small{display:block;font-size:3.2vmin;font-weight:400}
.speed{font-size:7vmin;font-weight:700;font-variant-numeric:tabular-nums;white-space:nowrap}
.speed small{font-size:3vmin;font-weight:400}
.age{font-size:2.4vmin;color:#ccc}
.freeFlow{border-color:#00e676}.freeFlow .level{color:#00e676}
.heavy{border-color:#ffea00}.heavy .level{color:#ffea00}
.congested{border-color:#ff6d00}.congested .level{color:#ff9100}
.stationary{border-color:#ff1744}.stationary .level{color:#ff5252}
.unknown{border-color:#9e9e9e;border-style:dashed}.unknown .level{color:#fff}.unknown .speed{visibility:hidden}
footer{font-size:2.4vmin;color:#ccc;display:flex;justify-content:space-between}
#link.lost{color:#fff;background:#b71c1c;padding:0 1vmin}
"""

_SCRIPT = """
(function(){
var LABELS=%(labels)s, STALE_MS=%(stale_ms)d, TZ=%(tz)s, last=Date.now();
function clock(){try{return new Date().toLocaleTimeString('en-GB',{timeZone:TZ,hour:'2-digit',minute:'2-digit'})}
 catch(e){var d=new Date();return d.getHours()+':'+('0'+d.getMinutes()).slice(-2)}}
function tick(){document.getElementById('clock').textContent=clock();
 var lost=Date.now()-last>STALE_MS, link=document.getElementById('link');
 link.className=lost?'lost':'';link.textContent=lost?'M\\u1ea5t k\\u1ebft n\\u1ed1i / Connection lost':'Tr\\u1ef1c ti\\u1ebfp / Live';
 if(lost){document.querySelectorAll('.seg').forEach(function(el){show(el,{level:'unknown',speed_kmh:null,age_s:null})})}}
function show(el,s){var lv=LABELS[s.level]||LABELS.unknown;el.className='seg '+s.level;
 el.querySelector('.lv_vi').textContent=lv[0];el.querySelector('.lv_en').textContent=lv[1];
 el.querySelector('.kmh').textContent=s.speed_kmh==null?'\\u2013':Math.round(s.speed_kmh);
 el.querySelector('.age').textContent=s.age_s==null?'':('C\\u1eadp nh\\u1eadt '+s.age_s+' gi\\u00e2y tr\\u01b0\\u1edbc / updated '+s.age_s+' s ago')}
function apply(doc){last=Date.now();document.getElementById('generated').textContent=doc.generated_at.slice(11,19);
 doc.segments.forEach(function(s){var el=document.getElementById('seg-'+s.id);if(el)show(el,s)});tick()}
if(window.EventSource){var es=new EventSource(%(stream_url)s);
 es.addEventListener('traffic',function(e){try{apply(JSON.parse(e.data))}catch(err){}})}
tick();setInterval(tick,1000);
})();
"""


def _card(seg: dict[str, Any]) -> str:
    level = Level(seg["level"])
    vi, en = LEVEL_LABELS[level]
    speed = "–" if seg["speed_kmh"] is None or level is Level.UNKNOWN else str(round(seg["speed_kmh"]))
    age = seg.get("age_s")
    age_text = "" if age is None else f"Cập nhật {age} giây trước / updated {age} s ago"
    return (
        f'<section class="seg {level.value}" id="seg-{escape(seg["id"])}">'
        f'<div><div class="name">{escape(seg["name"])}</div>'
        f'<div class="name_en">{escape(seg.get("name_en") or "")}</div></div>'
        f'<div class="state"><div class="level"><span class="lv_vi">{escape(vi)}</span>'
        f'<small class="lv_en">{escape(en)}</small></div>'
        f'<div class="speed"><span class="kmh">{speed}</span> <small>km/h</small></div></div>'
        f'<div class="age">{escape(age_text)}</div></section>'
    )


def render_signage(
    segments: list[dict[str, Any]],
    *,
    layout: str,
    generated_at: str,
    stale_after_s: float,
    stream_url: str,
    timezone: str,
    nonce: str,
) -> str:
    """The page; its one style sheet and one script carry ``nonce`` (the response's CSP allows only them)."""
    labels = json.dumps({lv.value: list(text) for lv, text in LEVEL_LABELS.items()})
    script = _SCRIPT % {
        "labels": labels,
        "stale_ms": int(stale_after_s * 1000),
        "stream_url": json.dumps(stream_url),
        "tz": json.dumps(timezone),
    }
    cards = "".join(_card(s) for s in segments) or (
        '<section class="seg unknown"><div class="name">Chưa có đoạn đường nào</div>'
        '<div class="name_en">No road segments configured</div></section>'
    )
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<noscript><meta http-equiv="refresh" content="30"></noscript>'
        "<title>Tình hình giao thông / Traffic</title>"
        f'<style nonce="{escape(nonce)}">{_CSS}</style></head>'
        f'<body class="{escape(layout)}">'
        '<header><h1>Tình hình giao thông<small>Traffic conditions</small></h1><div id="clock"></div></header>'
        f"<main>{cards}</main>"
        f'<footer><span>Cập nhật lúc / Updated at <span id="generated">{escape(generated_at[11:19])}</span></span>'
        '<span id="link">Trực tiếp / Live</span></footer>'
        f'<script nonce="{escape(nonce)}">{script}</script></body></html>'
    )
