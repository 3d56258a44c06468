"""The history pages in a real browser: Debian's chromium, driven by Selenium.

A real `feedd serve` on a free loopback port serves a real SQLite file, built
by `feedd backfill` from the seed dumps, a generated listing (bench/stream.py)
and edited dumps (tests/browser.py, ``write_dumps``). The tests read the
pages as a person would: they type into the search box, click titles and
"next" links, and compare what the page says with what the database holds,
asked directly with sqlite3. They read the DOM contract of the pages:

- every page: ``<a href="…status">status</a>``, relative;
- ``/``: ``form[role=search]`` with ``input[type=search][name=q]``;
  ``table#articles tr.article[data-uid]`` with ``a.title[href="articles/UID"]``,
  ``td.revisions`` and ``span.updated``; ``a[rel=next]``/``a[rel=prev]``;
  ``svg#per-day-90`` with ``rect.bar.new``/``rect.bar.update``
  (``data-bucket``, ``data-count``);
- ``/articles/UID``: ``h1``, ``section#revisions`` with ``ins``/``del``,
  ``table#sightings``, ``a[rel=prev]``/``a[rel=next]``;
- ``/activity``: ``svg#per-day-90``, ``svg#per-day-all``, ``svg#per-hour-48``.

After every test, every request the page made must have gone to the test's
own server (the browser's performance log); the browser could not reach
anything else anyway (tests/browser.py). Screenshots of each page go to the
test's tmp_path, and each must be more than a blank page.

    FEEDD_WRITE_SCREENSHOT=docs/screenshot.png .venv/bin/pytest tests/test_browser.py -k index

also copies the screenshot of ``/`` to the README's picture.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import browser
from tests.browser import EXTERNAL_URL, HOSTILE_V2, HOSTILE_WORD, INSERTED, Site

browser.require_chromium()

from selenium.common.exceptions import NoSuchElementException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(300)

# A word of a seed title (000_…: "…VQVAE的一个明显特征…自编码器…"), also in some
# generated articles (their text is spliced from the seeds).
SEED_WORD = "自编码器"
MIN_INK = 0.01  # share of non-background pixels; a blank page has 0
MIN_COLOURS = 16  # anti-aliased text alone gives dozens of shades


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("site")
    db = folder / "feedd.db"
    dumps = folder / "dumps"
    browser.write_dumps(dumps, browser.now_utc())
    config = browser.write_config(folder, db)
    browser.feedd(config, "backfill", str(dumps))
    with browser.serve(config) as url:
        yield Site(url=url, db=db, folder=folder, dumps=dumps)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with browser.chromium(tmp_path_factory.mktemp("selenium-cache")) as session:
        yield session


@pytest.fixture(autouse=True)
def stays_on_loopback(driver: WebDriver, site: Site) -> Iterator[None]:
    """Every request of the test went to the test's own server, on 127.0.0.1,
    and the pages' own Content-Security-Policy blocked nothing of theirs."""
    browser.network(driver)  # drain what an earlier test left
    browser.console(driver)
    yield
    # A page the browser revalidated (304) takes the 304's headers: a wrong
    # Content-Security-Policy there blocks the page's style and its form.
    blocked = [e["message"][:300] for e in browser.console(driver) if e["source"] == "security"]
    assert not blocked, f"the browser blocked parts of the pages: {blocked}"
    events = browser.network(driver)
    outside = [e.url[:120] for e in events if not browser.is_local(e.url, site.url)]
    assert not outside, f"requests left {site.url}: {outside}"
    failed = [(e.url, e.status) for e in events if e.resource == "Document" and e.status != 200]
    assert not failed, f"pages that did not answer 200: {failed}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return tmp_path / "screenshots"


# --- helpers ---------------------------------------------------------------------


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    _loaded(driver)


def follow(driver: WebDriver, link: WebElement) -> None:
    """Click a link as a person would and wait for the next page."""
    old = driver.find_element(By.TAG_NAME, "html")
    href = link.get_dom_attribute("href")
    link.click()
    WebDriverWait(driver, 20).until(lambda d: _is_stale(old), f"clicking {href!r} went nowhere")
    _loaded(driver)


def search(driver: WebDriver, words: str) -> None:
    """Type into the search box and press Enter, as a person would."""
    box = driver.find_element(By.CSS_SELECTOR, 'form[role="search"] input[type="search"][name="q"]')
    old = driver.find_element(By.TAG_NAME, "html")
    box.send_keys(words, Keys.ENTER)
    WebDriverWait(driver, 20).until(
        lambda d: _is_stale(old), "Enter in the search box did not submit the search"
    )
    _loaded(driver)


def _is_stale(element: WebElement) -> bool:
    try:
        element.tag_name  # noqa: B018 - raises once the page is gone
    except Exception:  # noqa: BLE001 - StaleElementReferenceException and kin
        return True
    return False


def _loaded(driver: WebDriver) -> None:
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def optional(driver: WebDriver | WebElement, css: str) -> WebElement | None:
    try:
        return driver.find_element(By.CSS_SELECTOR, css)
    except NoSuchElementException:
        return None


def rows(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "table#articles tr.article")


def attributes(root: WebDriver | WebElement, css: str, *names: str) -> list[list[str | None]]:
    """The attributes of every element ``css`` matches under ``root``, in one
    round trip (one WebDriver call per element takes seconds per chart)."""
    driver = root if isinstance(root, WebDriver) else root.parent
    scope = None if isinstance(root, WebDriver) else root
    found: list[list[str | None]] = driver.execute_script(
        "const root = arguments[0] || document;"
        "return Array.from(root.querySelectorAll(arguments[1]),"
        " e => arguments[2].map(n => e.getAttribute(n)));",
        scope,
        css,
        list(names),
    )
    return found


def uids(driver: WebDriver) -> list[str]:
    return [str(uid) for (uid,) in attributes(driver, "table#articles tr.article", "data-uid")]


def page_through(driver: WebDriver) -> list[list[str]]:
    """The uids of this page and of every page after it, following rel=next."""
    pages = [uids(driver)]
    while (link := optional(driver, 'a[rel="next"]')) is not None:
        follow(driver, link)
        pages.append(uids(driver))
        assert len(pages) < 200, "rel=next never ends"
    return pages


def assert_not_blank(pixels: browser.Pixels, what: str) -> None:
    ink = pixels.ink()
    colours = len(pixels.colours())
    assert ink >= MIN_INK and colours >= MIN_COLOURS, (
        f"{what} looks blank: {ink:.2%} of pixels drawn, {colours} colours"
    )


def assert_links_to_status(driver: WebDriver) -> None:
    link = driver.find_element(By.XPATH, "//a[normalize-space(.)='status']")
    href = str(link.get_dom_attribute("href"))
    assert href.endswith("status"), href
    assert not href.startswith("/") and "://" not in href, f"status link not relative: {href}"


def article_rows(site: Site) -> dict[str, tuple[int, str]]:
    """uid -> (revision count, first seen), from the database."""
    return {
        uid: (count, first_seen)
        for uid, count, first_seen in site.sql(
            "SELECT uid, revision_count, first_seen FROM articles"
        )
    }


def floor(value: datetime, unit: str) -> datetime:
    start = value.replace(minute=0, second=0, microsecond=0)
    if unit == "hour":
        return start
    start = start.replace(hour=0)
    if unit == "week":
        return start - timedelta(days=start.weekday())
    if unit == "month":
        return start.replace(day=1)
    return start


def bucket_key(start: datetime, unit: str) -> str:
    return start.strftime("%Y-%m-%dT%H" if unit == "hour" else "%Y-%m-%d")


def activity(site: Site, unit: str) -> dict[str, Counter[str]]:
    """New articles (articles.first_seen) and updates (revisions after the first,
    by their first_seen) per UTC bucket, counted here from the raw rows."""
    out: dict[str, Counter[str]] = {"new": Counter(), "update": Counter()}
    queries = {
        "new": "SELECT first_seen FROM articles",
        "update": "SELECT first_seen FROM revisions WHERE number > 1",
    }
    for kind, query in queries.items():
        for (seen,) in site.sql(query):
            when = datetime.fromisoformat(seen).replace(tzinfo=UTC)
            out[kind][bucket_key(floor(when, unit), unit)] += 1
    return out


def chart(driver: WebDriver, chart_id: str) -> tuple[str, dict[str, dict[str, int]]]:
    """(unit, {"new": {bucket: count}, "update": {...}}) of an svg chart."""
    svg = driver.find_element(By.CSS_SELECTOR, f"svg.chart#{chart_id}, svg#{chart_id}")
    unit = str(svg.get_dom_attribute("data-unit") or ("hour" if "hour" in chart_id else "day"))
    bars: dict[str, dict[str, int]] = {"new": {}, "update": {}}
    for kind in bars:
        for bucket, count in attributes(svg, f"rect.bar.{kind}", "data-bucket", "data-count"):
            assert bucket not in bars[kind], f"{chart_id}: bucket {bucket} drawn twice"
            bars[kind][str(bucket)] = int(str(count))
    assert bars["new"], f"{chart_id} has no bars"
    return unit, bars


def assert_chart_matches(site: Site, driver: WebDriver, chart_id: str) -> dict[str, Any]:
    """Every bar's count is the database's; no bucket with activity inside the
    chart's range is missing. Returns the chart's totals."""
    unit, bars = chart(driver, chart_id)
    truth = activity(site, unit)
    totals: dict[str, Any] = {"unit": unit}
    for kind, drawn in bars.items():
        first, last = min(drawn), max(drawn)
        expected = {k: v for k, v in truth[kind].items() if first <= k <= last}
        shown = {k: v for k, v in drawn.items() if v}
        assert shown == expected, f"{chart_id} {kind} bars differ from the database"
        totals[kind] = sum(drawn.values())
    return totals


# --- tests -----------------------------------------------------------------------


def test_index_lists_the_newest_articles_with_their_revision_counts(
    driver: WebDriver, site: Site, shots: Path
) -> None:
    open_page(driver, site.url)
    lang = driver.find_element(By.TAG_NAME, "html").get_dom_attribute("lang") or ""
    assert lang.startswith("zh"), f"<html lang={lang!r}>: Chinese needs lang=zh (feed.language)"
    assert_links_to_status(driver)
    known = article_rows(site)
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('table#articles tr.article'), r => {"
        " const title = r.querySelector('a.title'), count = r.querySelector('td.revisions');"
        " return {uid: r.getAttribute('data-uid'),"
        "  href: title && title.getAttribute('href'), title: title && title.innerText,"
        "  revisions: count && count.innerText, updated: !!r.querySelector('span.updated')};"
        "});"
    )
    assert shown, "no article rows on /"
    seen_order = []
    for row in shown:
        uid = row["uid"]
        assert uid in known, f"row for an article the database does not hold: {uid}"
        count, first_seen = known[uid]
        assert row["href"] == f"articles/{uid}"
        assert (row["title"] or "").strip(), f"{uid} has an empty title"
        assert int(row["revisions"]) == count, uid
        assert row["updated"] == (count > 1), uid
        seen_order.append(first_seen)
    assert seen_order == sorted(seen_order, reverse=True), "/ is not newest first"
    # The newest are the seeds' and the edited dumps' (written last).
    assert any(row["updated"] for row in shown)

    pixels = browser.save_screenshot(driver, shots, "index")
    assert_not_blank(pixels, "/")
    browser.copy_if_asked(shots / "index.png")
    # Chinese is drawn with real glyphs: with no CJK font every character is
    # the same empty box, so two different characters would give equal pictures.
    one, other = browser.glyph_png(driver, "研"), browser.glyph_png(driver, "究")
    assert_not_blank(browser.decode_png(one), "the glyph 研")
    assert browser.decode_png(one).data != browser.decode_png(other).data, "CJK glyphs are tofu"


def test_paging_visits_every_article_once_newest_first(driver: WebDriver, site: Site) -> None:
    open_page(driver, site.url)
    assert optional(driver, 'a[rel="prev"]') is None, "the first page has a previous page"
    pages = page_through(driver)
    assert len(pages) >= 3, f"{len(pages)} pages for {len(article_rows(site))} articles"
    listed = [uid for page in pages for uid in page]
    assert len(listed) == len(set(listed)), "an article is listed on two pages"
    known = article_rows(site)
    assert set(listed) == set(known)
    order = [known[uid][1] for uid in listed]
    assert order == sorted(order, reverse=True), "paging is not newest first"
    # Back one page from the last: the page before it, as it was.
    follow(driver, driver.find_element(By.CSS_SELECTOR, 'a[rel="prev"]'))
    assert uids(driver) == pages[-2]
    assert "cursor" in driver.current_url or "page" in driver.current_url


def test_search_for_a_chinese_word_pages_through_every_match(
    driver: WebDriver, site: Site, shots: Path
) -> None:
    open_page(driver, site.url)
    search(driver, SEED_WORD)
    assert parse_qs(urlsplit(driver.current_url).query).get("q") == [SEED_WORD]
    assert_not_blank(browser.save_screenshot(driver, shots, "search"), "the search results")
    found = [uid for page in page_through(driver) for uid in page]
    assert len(found) == len(set(found))
    like = f"%{SEED_WORD}%"
    in_current = {
        uid
        for (uid,) in site.sql(
            "SELECT a.uid FROM articles a JOIN revisions r ON r.article_id = a.id "
            "AND r.number = a.current_revision WHERE r.text LIKE ?",
            like,
        )
    }
    in_any = {
        uid
        for (uid,) in site.sql(
            "SELECT DISTINCT a.uid FROM articles a JOIN revisions r ON r.article_id = a.id "
            "WHERE r.text LIKE ?",
            like,
        )
    }
    assert len(in_current) >= 2, "the corpus should hold the word more than once"
    assert in_current <= set(found), "search missed articles whose text holds the word"
    assert set(found) <= in_any, "search found articles that never held the word"


def test_a_page_revalidated_from_the_cache_keeps_its_style_and_search(
    driver: WebDriver, site: Site
) -> None:
    # The second visit revalidates the cached page (If-None-Match, 304): the
    # browser then applies the 304's headers, Content-Security-Policy included.
    open_page(driver, site.url)
    open_page(driver, site.url)
    sheets = driver.execute_script(
        "return Array.from(document.styleSheets, s => s.cssRules.length).reduce((a, b) => a + b, 0)"
    )
    assert sheets > 0, "the revisited page has no style: its CSP blocked it"
    search(driver, HOSTILE_WORD)
    assert len(rows(driver)) == 1


def test_search_then_open_the_article_and_see_its_diff_as_text(
    driver: WebDriver, site: Site, shots: Path
) -> None:
    open_page(driver, site.url)
    search(driver, HOSTILE_WORD)
    found = rows(driver)
    assert len(found) == 1, f"{len(found)} results for {HOSTILE_WORD}, the hostile article's"
    uid = str(found[0].get_dom_attribute("data-uid"))
    assert found[0].find_element(By.CSS_SELECTOR, "td.revisions").text == "2"
    follow(driver, found[0].find_element(By.CSS_SELECTOR, "a.title"))
    assert urlsplit(driver.current_url).path == f"/articles/{uid}"
    assert_links_to_status(driver)
    assert driver.find_element(By.TAG_NAME, "h1").text.strip()
    revisions = driver.find_element(By.CSS_SELECTOR, "section#revisions")
    inserted = " ".join(e.text for e in revisions.find_elements(By.TAG_NAME, "ins"))
    assert "首次" in inserted, f"the diff does not show the inserted word: {inserted!r}"
    # The scraped markup is text on the page, not an element.
    assert '<img src="http://example.invalid/x.png">' in revisions.text
    images = driver.find_elements(By.CSS_SELECTOR, "img")
    assert not [i for i in images if "example.invalid" in (i.get_dom_attribute("src") or "")]
    assert_not_blank(browser.save_screenshot(driver, shots, "hostile"), "the article page")
    events = browser.network(driver)
    assert not [e for e in events if e.url == EXTERNAL_URL], "the browser asked for the image"
    assert all(browser.is_local(e.url, site.url) for e in events), [e.url for e in events]
    # The article's current text is the second revision's.
    assert site.sql(
        "SELECT r.text FROM articles a JOIN revisions r ON r.article_id = a.id "
        "AND r.number = a.current_revision WHERE a.uid = ?",
        uid,
    ) == [(HOSTILE_V2,)]


def test_article_page_shows_revisions_sightings_and_neighbours(
    driver: WebDriver, site: Site, shots: Path
) -> None:
    (uid,) = next(
        iter(
            site.sql(
                "SELECT a.uid FROM articles a JOIN revisions r ON r.article_id = a.id "
                "WHERE r.number = 2 AND r.text LIKE ?",
                f"%{INSERTED}%",
            )
        )
    )
    open_page(driver, site.url)
    row = driver.find_element(By.CSS_SELECTOR, f'tr.article[data-uid="{uid}"]')
    assert row.find_elements(By.CSS_SELECTOR, "span.updated"), "the edited seed is not marked"
    title = row.find_element(By.CSS_SELECTOR, "a.title").text.strip()
    follow(driver, row.find_element(By.CSS_SELECTOR, "a.title"))
    assert driver.find_element(By.TAG_NAME, "h1").text.strip() == title
    revisions = driver.find_element(By.CSS_SELECTOR, "section#revisions")
    inserted = "".join(e.text for e in revisions.find_elements(By.TAG_NAME, "ins"))
    assert INSERTED in inserted, f"the diff does not show the insertion: {inserted!r}"
    sightings = driver.find_elements(By.CSS_SELECTOR, "table#sightings tr:has(td)")
    ((expected,),) = site.sql(
        "SELECT count(*) FROM sightings s JOIN articles a ON a.id = s.article_id WHERE a.uid = ?",
        uid,
    )
    assert len(sightings) == expected
    kinds = Counter(cell.text.strip() for cell in driver.find_elements(By.XPATH, "//td"))
    assert kinds["update"] >= 1 and kinds["new"] >= 1, "sightings do not say new/update"
    assert_not_blank(browser.save_screenshot(driver, shots, "article"), "the article page")

    neighbour = optional(driver, 'a[rel="next"]') or optional(driver, 'a[rel="prev"]')
    assert neighbour is not None, "no link to the previous or next article"
    follow(driver, neighbour)
    path = urlsplit(driver.current_url).path
    assert re.fullmatch(r"/articles/[0-9a-f-]{4,36}", path) and path != f"/articles/{uid}"
    assert driver.find_element(By.TAG_NAME, "h1").text.strip()


def test_charts_count_what_the_database_holds(driver: WebDriver, site: Site, shots: Path) -> None:
    open_page(driver, site.url)
    ninety = assert_chart_matches(site, driver, "per-day-90")
    assert ninety["unit"] == "day" and ninety["update"] > 0
    svg = driver.find_element(By.CSS_SELECTOR, "svg.chart#per-day-90")
    assert_not_blank(browser.decode_png(svg.screenshot_as_png), "the 90-day chart")

    open_page(driver, site.url + "activity")
    assert_links_to_status(driver)
    assert assert_chart_matches(site, driver, "per-day-90") == ninety
    everything = assert_chart_matches(site, driver, "per-day-all")
    ((articles, updates),) = site.sql(
        "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM revisions WHERE number > 1)"
    )
    assert (everything["new"], everything["update"]) == (articles, updates)
    hours = assert_chart_matches(site, driver, "per-hour-48")
    assert hours["unit"] == "hour" and hours["new"] > 0
    _, bars = chart(driver, "per-hour-48")
    assert len(bars["new"]) in (48, 49), f"{len(bars['new'])} hourly buckets"
    assert_not_blank(browser.save_screenshot(driver, shots, "activity"), "/activity")


@pytest.mark.parametrize("path", ["", "dumps", "status", "activity", "article"])
def test_every_page_links_to_status(driver: WebDriver, site: Site, path: str) -> None:
    if path == "article":
        ((uid,),) = site.sql("SELECT uid FROM articles ORDER BY id LIMIT 1")
        path = f"articles/{uid}"
    open_page(driver, site.url + path)
    lang = driver.find_element(By.TAG_NAME, "html").get_dom_attribute("lang") or ""
    assert lang.startswith("zh"), f"/{path}: <html lang={lang!r}>"
    assert_links_to_status(driver)
    follow(driver, driver.find_element(By.XPATH, "//a[normalize-space(.)='status']"))
    assert driver.current_url == site.url + "status"
