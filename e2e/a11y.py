"""
What every page owes every visitor, checked on the page as loaded: axe-core's WCAG 2.1 A/AA
and best-practice rules (the engine axe-playwright-python bundles; no rule of ours), no
sideways scrolling, no id used twice, no two controls of one role with one name, and a focus
indicator a keyboard user can see.
"""

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Locator, Page

# The widths every page is checked at: a laptop, and a phone (an iPhone 12-15's CSS width).
WIDTHS = {"desktop": 1366, "phone": 390}
HEIGHTS = {"desktop": 768, "phone": 844}

AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}

# The insides of Pygments' highlighted source (`<pre class="code"><code>`): up to 3,000 spans
# a page, in some twenty colours on one background, and three quarters of axe's time there.
# Contrast is all that can fail in them, and one span of a colour answers for the others.
HIGHLIGHTED_CODE = "pre.code > code"


@dataclass
class Finding:
    """One axe rule a page breaks, with the elements that break it."""

    rule: str
    impact: str
    targets: list[str]

    def __str__(self) -> str:
        shown = ", ".join(self.targets[:4]) + (" ..." if len(self.targets) > 4 else "")
        return f"{self.rule} ({self.impact}) x{len(self.targets)}: {shown}"


def viewport(width_name: str) -> dict[str, int]:
    """The viewport of a named width (`new_context(viewport=viewport("phone"))`)."""
    return {"width": WIDTHS[width_name], "height": HEIGHTS[width_name]}


def axe_findings(page: Page, contrast: bool = True, all_code: bool = False) -> list[Finding]:
    """
    Every axe violation on the page as it is now, of any impact. Highlighted code is
    checked for contrast through one span of each of its colours, unless `all_code`;
    `contrast=False` leaves colour contrast out (a second width of the same page).
    """
    # Once per document: the page keeps it across checks at several widths.
    if page.evaluate("() => typeof window.axe") == "undefined":
        page.evaluate(AXE_SCRIPT)
    violations = page.evaluate(
        """async ([options, code, contrast, allCode]) => {
            const off = { "color-contrast": { enabled: false } };
            if (!contrast) options = { ...options, rules: off };
            if (allCode) return (await axe.run(document, options)).violations;
            const { violations } = await axe.run({ exclude: [[code]] }, options);
            const samples = new Map();
            for (const span of document.querySelectorAll(`${code} span[class]`)) {
                if (!samples.has(span.className)) samples.set(span.className, span);
            }
            if (contrast && samples.size) {
                const rule = { type: "rule", values: ["color-contrast"] };
                const contrast = { ...options, runOnly: rule };
                samples.forEach((span) => span.setAttribute("data-axe-sample", ""));
                const sampled = await axe.run({ include: [["[data-axe-sample]"]] }, contrast);
                samples.forEach((span) => span.removeAttribute("data-axe-sample"));
                violations.push(...sampled.violations);
            }
            return violations;
        }""",
        [AXE_OPTIONS, HIGHLIGHTED_CODE, contrast, all_code],
    )
    return [
        Finding(v["id"], v["impact"], [" ".join(n["target"]) for n in v["nodes"]])
        for v in violations
    ]


def overflow(page: Page) -> str | None:
    """
    None if the page is no wider than its viewport; otherwise the widths and the outermost
    elements that stick out past the viewport's right edge (ignoring those a box of their
    own scrolls or clips), to say what pushed the page wide.
    """
    return page.evaluate(
        """() => {
            const root = document.documentElement;
            if (root.scrollWidth <= window.innerWidth) return null;
            const clipped = (el) => {
                for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                    if (getComputedStyle(p).overflowX !== "visible") return true;
                }
                return false;
            };
            const wide = [...document.body.querySelectorAll("*")].filter(
                (el) => el.getBoundingClientRect().right > window.innerWidth + 0.5 && !clipped(el),
            );
            const outermost = wide.filter((el) => !wide.includes(el.parentElement));
            const name = (el) => el.tagName.toLowerCase()
                + (el.id ? `#${el.id}` : "")
                + (el.classList.length ? `.${[...el.classList].join(".")}` : "");
            return `${root.scrollWidth} px wide in a ${window.innerWidth} px viewport: `
                + outermost.slice(0, 5).map((el) => {
                    const right = Math.round(el.getBoundingClientRect().right);
                    return `${name(el)} (right edge ${right})`;
                }).join(", ");
        }"""
    )


def duplicate_ids(page: Page) -> dict[str, int]:
    """Each id that more than one element of the page carries, with how many carry it."""
    return page.evaluate(
        """() => {
            const counts = {};
            for (const el of document.querySelectorAll("[id]")) {
                counts[el.id] = (counts[el.id] || 0) + 1;
            }
            return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 1));
        }"""
    )


# Roles whose name is how a screen-reader user tells one control (or log) from another.
CONTROL_ROLES = [
    "button",
    "checkbox",
    "combobox",
    "listbox",
    "log",
    "radio",
    "searchbox",
    "slider",
    "spinbutton",
    "switch",
    "textbox",
]
ARIA_LINE = re.compile(r'^\s*- (\w+) "((?:[^"\\]|\\.)*)"')


def repeated_names(page: Page) -> dict[str, int]:
    """
    Each control (or log) that shares its role and name with another on the page, as
    `role "name"`, with how many share it: a screen reader announces them all alike.
    """
    seen = Counter(
        f'{match[1]} "{match[2]}"'
        for line in page.locator("body").aria_snapshot().splitlines()
        if (match := ARIA_LINE.match(line)) and match[1] in CONTROL_ROLES
    )
    return {control: n for control, n in seen.items() if n > 1}


def open_details(page: Page) -> None:
    """Open every <details>, so what a visitor can expand is checked too."""
    page.evaluate("() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")


def audit(page: Page, contrast: bool = True, all_code: bool = False) -> list[str]:
    """
    Everything wrong with the page as it is now, one line each; empty when it passes.
    `contrast` and `all_code` as for axe_findings().
    """
    open_details(page)
    problems = [f"axe: {finding}" for finding in axe_findings(page, contrast, all_code)]
    if wide := overflow(page):
        problems.append(f"sideways scrolling: {wide}")
    problems += [f"id {id_!r} appears {n} times" for id_, n in duplicate_ids(page).items()]
    problems += [f"{n} controls named {control}" for control, n in repeated_names(page).items()]
    return problems


# ---------------------------------------------------------------------------- the keyboard

FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]"

_FOCUS_STYLE = """(el) => {
    const s = getComputedStyle(el);
    return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow].join(" | ");
}"""


def remember_unfocused_styles(page: Page) -> None:
    """
    Record how each focusable element looks without focus (outline and box-shadow), so a
    walk can tell whether focus changes what a sighted keyboard user sees. Call it once the
    page's controls exist, before any of them has focus.
    """
    page.evaluate(
        f"""(selector) => {{
            // An autofocused field (the login form's) is measured unfocused, then given back
            // its focus: the walk starts where a visitor's keyboard would.
            const focused = document.activeElement;
            focused?.blur();
            const style = {_FOCUS_STYLE};
            window.unfocusedStyles = new WeakMap();
            for (const el of document.querySelectorAll(selector)) {{
                window.unfocusedStyles.set(el, style(el));
            }}
            if (focused && focused !== document.body) focused.focus();
        }}""",
        FOCUSABLE,
    )


def _focus_step(page: Page) -> dict[str, Any]:
    return page.evaluate(
        f"""() => {{
            const el = document.activeElement;
            const style = {_FOCUS_STYLE};
            const s = getComputedStyle(el);
            const before = window.unfocusedStyles.get(el);
            const drawn = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0)
                || s.boxShadow !== "none";
            const name = el.getAttribute("aria-label") || el.labels?.[0]?.textContent
                || el.textContent || el.getAttribute("name") || "";
            const short = name.trim().replace(/\\s+/g, " ").slice(0, 40);
            return {{
                element: `${{el.tagName.toLowerCase()}} "${{short}}"`,
                isTarget: el === window.walkTarget,
                onBody: el === document.body,
                known: before !== undefined,
                visible: drawn && before !== undefined && before !== style(el),
            }};
        }}"""
    )


def tab_to(page: Page, target: Locator, backwards: bool = False, limit: int = 60) -> list[str]:
    """
    Press Tab (Shift+Tab if `backwards`) until `target` has focus, asserting at every stop
    that the focused element shows a focus indicator it does not show unfocused (no key at
    all if it has focus already). Returns the elements focus passed through, target last.
    """
    target.evaluate("(el) => { window.walkTarget = el; }")
    key = "Shift+Tab" if backwards else "Tab"
    path: list[str] = []
    step = _focus_step(page)
    for _ in range(limit):
        if step["isTarget"]:
            assert step["visible"], f"no visible focus indicator on {step['element']}"
            return path
        page.keyboard.press(key)
        step = _focus_step(page)
        path.append(step["element"])
        assert not step["onBody"], f"focus fell back to the page after {path}"
        assert step["known"], f"{step['element']} appeared after remember_unfocused_styles()"
        assert step["visible"], f"no visible focus indicator on {step['element']} (after {path})"
    raise AssertionError(f"{key} x{limit} never reached the target; focus went {path}")
