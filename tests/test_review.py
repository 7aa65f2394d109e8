"""`terc-tag review`: the web page's security rules, its API, and a real browser correcting a photo."""

import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEFAULT_MODEL, ISS, as_list, exiftool

from tagger.bundle import Bundle
from tagger.cli import main
from tagger.review.app import MAX_BODY, TOKEN_HEADER, Review, Server, cookie_name, create_app
from tagger.review.order import pressing_tags, review_order
from tagger.state import Record, State
from tagger.tagging.pipeline import tag_folder

TOKEN = "a-test-token"


@pytest.fixture(scope="module")
def tagged_once(tmp_path_factory):
    from tagger.model import TaggerSession

    out = tmp_path_factory.mktemp("review") / "tagged"
    tag_folder(ISS, out, TaggerSession(DEFAULT_MODEL))
    return out


@pytest.fixture
def output(tagged_once, tmp_path):
    return shutil.copytree(tagged_once, tmp_path / "tagged")


@pytest.fixture
def client(output):
    app = create_app(Review(output, Bundle(DEFAULT_MODEL)), TOKEN)
    return app.test_client()


def reviewed(output: Path, name: str) -> str | None:
    state = State.reader(output)
    try:
        return state.get(name).reviewed
    finally:
        state.close()


def test_every_request_needs_the_token(client):
    for path in ("/", "/api/photos", "/thumb/iss038e040838.jpg", "/api/similar/iss038e040838.jpg"):
        assert client.get(path).status_code == 401
        assert client.get(path + "?token=wrong").status_code == 401
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 200 and f"{cookie_name(TOKEN)}={TOKEN}" in first.headers["Set-Cookie"]
    assert "SameSite=Strict" in first.headers["Set-Cookie"] and "HttpOnly" in first.headers["Set-Cookie"]
    assert client.get("/api/photos").status_code == 200  # the cookie carries it from here


def test_a_change_needs_the_token_in_a_header_not_just_the_cookie(client, output):
    client.get(f"/?token={TOKEN}")
    body = {"paths": ["iss038e040838.jpg"], "add": ["Night"]}
    assert client.post("/api/correct", json=body).status_code == 401  # what another site's form could send
    assert reviewed(output, "iss038e040838.jpg") is None
    answer = client.post("/api/correct", json=body, headers={TOKEN_HEADER: TOKEN})
    assert answer.status_code == 200 and answer.json["corrected"][0]["tags"] == ["Night", "Aurora"]
    assert reviewed(output, "iss038e040838.jpg")


@pytest.mark.parametrize("path", [
    "/thumb/../predictions.csv", "/thumb/..%2Fpredictions.csv", "/thumb/%2e%2e/%2e%2e/etc/passwd",
    "/thumb/.terc-tag/state.sqlite", "/large/predictions.csv", "/thumb/%2Fetc%2Fpasswd",
    "/heat/..%2F..%2Fetc%2Fpasswd?tag=Day", "/api/similar/%2e%2e%2fpredictions.csv", "/thumb/nowhere.jpg",
])
def test_only_tagged_photos_inside_output_are_served(client, path):
    client.get(f"/?token={TOKEN}")
    answer = client.get(path, follow_redirects=True)
    assert answer.status_code == 404 and b"Traceback" not in answer.data and b"root:" not in answer.data


def test_a_symbolic_link_out_of_output_is_not_followed(client, output, tmp_path):
    secret = tmp_path / "secret.jpg"
    shutil.copy(ISS / "iss052e033191.jpg", secret)
    (output / "escape.jpg").symlink_to(secret)
    with sqlite3.connect(output / ".terc-tag" / "state.sqlite") as db:  # even if the state named it
        db.execute("INSERT INTO photos (path, size, mtime_ns, run_key, status, probabilities, tags)"
                   " SELECT 'escape.jpg', size, mtime_ns, run_key, status, probabilities, tags FROM photos LIMIT 1")
    db.close()
    client.get(f"/?token={TOKEN}")
    assert client.get("/thumb/escape.jpg").status_code == 404
    assert client.get("/thumb/iss052e033191.jpg").status_code == 200


@pytest.mark.parametrize("body, message", [
    ("not json", b"expected a JSON object"),
    ({"paths": "iss038e040838.jpg"}, b"expected {"),
    ({"paths": ["iss038e040838.jpg"], "add": ["Auroras"]}, b"not in the model's vocabulary"),
    ({"paths": ["iss038e040838.jpg"], "add": [3]}, b"expected {"),
    ({"paths": ["iss038e040838.jpg"], "reviewed": "no"}, b"expected {"),
])
def test_malformed_changes_get_a_short_4xx(client, output, body, message):
    client.get(f"/?token={TOKEN}")
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    answer = client.post("/api/correct", headers={TOKEN_HEADER: TOKEN}, **kwargs)
    assert answer.status_code == 400 and message in answer.data and len(answer.data) < 300
    assert reviewed(output, "iss038e040838.jpg") is None


def test_an_unexpected_failure_is_a_500_without_a_traceback(output, monkeypatch):
    monkeypatch.setattr(Review, "photos", lambda self: 1 / 0)
    client = create_app(Review(output, Bundle(DEFAULT_MODEL)), TOKEN).test_client()
    answer = client.get(f"/api/photos?token={TOKEN}")
    assert answer.status_code == 500 and b"ZeroDivision" not in answer.data and b"Traceback" not in answer.data


def test_two_servers_name_their_cookies_apart():
    """Cookies ignore the port: two review servers on one machine must not overwrite each other's token."""
    assert cookie_name("one token") != cookie_name("another token")
    assert cookie_name(TOKEN) == cookie_name(TOKEN) and cookie_name(TOKEN).isidentifier()


def test_no_other_page_can_frame_the_review_page(client):
    for path in (f"/?token={TOKEN}", "/api/photos", "/nowhere"):
        headers = client.get(path).headers
        assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_head_works_with_the_token(client):
    assert client.head(f"/?token={TOKEN}").status_code == 200
    assert client.head("/api/photos").status_code == 200  # the cookie
    assert client.head("/thumb/iss038e040838.jpg").status_code == 200


@pytest.mark.parametrize("host, status", [
    ("attacker.example", 421), ("attacker.example:8765", 421), ("127.0.0.1.nip.io", 421),
    ("localhost:8765", 200), ("127.0.0.1:8765", 200), ("[::1]:8765", 200),
])
def test_only_loopback_names_and_the_served_address_are_answered(client, host, status):
    """With the token, a foreign Host is what DNS rebinding would send: refused."""
    assert client.get(f"/api/photos?token={TOKEN}", headers={"Host": host}).status_code == status


def test_deeply_nested_json_is_a_400(client, output):
    client.get(f"/?token={TOKEN}")
    for body in ("[" * 100_000 + "]" * 100_000, '{"paths": ' + "[" * 100_000 + "]" * 100_000 + "}"):
        answer = client.post("/api/correct", data=body, headers={TOKEN_HEADER: TOKEN})
        assert answer.status_code == 400 and b"expected a JSON object" in answer.data


def test_a_large_body_is_refused_before_it_is_read(output):
    with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
        # A client that asks first is refused before it sends a byte of the body.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(f"POST /api/correct HTTP/1.1\r\nHost: 127.0.0.1\r\n{TOKEN_HEADER}: {server.token}\r\n"
                        f"Content-Length: {20 * 2**20}\r\nExpect: 100-continue\r\n\r\n".encode())
            assert raw.recv(200).split(b" ")[1] == b"413"
        # One that sends it at once gets a 413 too, fast, and nothing of the body back.
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("POST", "/api/correct", body=b"x" * (20 * 2**20), headers={TOKEN_HEADER: server.token})
        answer = connection.getresponse()
        assert answer.status == 413 and b"xxx" not in answer.read()
        assert time.monotonic() - started < 5
        connection.close()
        # Just under the limit is read and answered as usual.
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("POST", "/api/correct", body=b" " * (MAX_BODY - 10), headers={TOKEN_HEADER: server.token})
        assert connection.getresponse().status == 400


def test_a_port_already_in_use_is_one_line_and_exit_2(output):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["review", str(output), "--no-browser", "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


THUMBNAILS_ONLY = """
import json, resource, sys, time
from tagger.bundle import Bundle
from tagger.review.app import Review, create_app
output, model = sys.argv[1:3]
client = create_app(Review(output, Bundle(model)), "t").test_client()
client.get("/?token=t")
paths = [p["path"] for p in client.get("/api/photos").json["photos"]]
started = time.perf_counter()
sizes = [len(client.get(f"/{kind}/{path}").data) for kind in ("thumb", "large") for path in paths][:8]
print(json.dumps({"sizes": sizes, "seconds": time.perf_counter() - started,
                  "tensorflow": "tensorflow" in sys.modules,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_thumbnails_need_no_model_and_are_kept_in_the_state_folder(output):
    """In a fresh process: the pytest process has TensorFlow loaded by the fixtures already."""
    def serve_thumbnails() -> dict:
        done = subprocess.run([sys.executable, "-c", THUMBNAILS_ONLY, str(output), str(DEFAULT_MODEL)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": ":".join(sys.path)})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    first = serve_thumbnails()
    assert len(first["sizes"]) == 8 and all(first["sizes"]) and not first["tensorflow"]
    cached = sorted((output / ".terc-tag" / "thumbnails").rglob("*.jpg"))
    assert len(cached) == 6 and all(path.read_bytes()[:2] == b"\xff\xd8" for path in cached)
    stamps = [path.stat().st_mtime_ns for path in cached]
    assert serve_thumbnails()["sizes"][:6] == first["sizes"][:6]  # a reopened page reads them back
    assert [path.stat().st_mtime_ns for path in cached] == stamps  # not made again


def test_a_corrected_photo_gets_a_new_thumbnail_in_place(client, output):
    client.get(f"/?token={TOKEN}")
    client.get("/thumb/iss038e040838.jpg")
    (cached,) = (output / ".terc-tag" / "thumbnails").rglob("*.jpg")
    cached.write_bytes(b"stale")
    os.utime(cached, ns=((output / "iss038e040838.jpg").stat().st_mtime_ns,) * 2)
    assert client.get("/thumb/iss038e040838.jpg").data == b"stale"  # the cache is what is served
    client.post("/api/correct", json={"paths": ["iss038e040838.jpg"], "add": ["Night"]}, headers={TOKEN_HEADER: TOKEN})
    fresh = client.get("/thumb/iss038e040838.jpg").data
    assert fresh.startswith(b"\xff\xd8") and list((output / ".terc-tag" / "thumbnails").rglob("*.jpg")) == [cached]


def test_one_photo_named_twice_through_the_api_is_one_photo(client, output):
    client.get(f"/?token={TOKEN}")
    body = {"paths": ["iss038e040838.jpg", "./iss038e040838.jpg", "x/../iss038e040838.jpg"], "add": ["Volcano"]}
    answer = client.post("/api/correct", json=body, headers={TOKEN_HEADER: TOKEN})
    assert answer.status_code == 200 and len(answer.json["corrected"]) == 1
    again = client.post("/api/correct", json={"paths": ["iss038e040838.jpg"], "remove": ["Volcano"]},
                        headers={TOKEN_HEADER: TOKEN}).json["corrected"][0]
    assert again["removed"] == ["Volcano"] and again["kept"] == []


def test_a_photo_is_handed_back_to_the_model_through_the_api(client, output):
    client.get(f"/?token={TOKEN}")
    client.post("/api/correct", json={"paths": ["iss038e040838.jpg"]}, headers={TOKEN_HEADER: TOKEN})
    assert reviewed(output, "iss038e040838.jpg") and client.get("/api/photos").json["left"] == 5
    back = client.post("/api/correct", json={"paths": ["iss038e040838.jpg"], "reviewed": False},
                       headers={TOKEN_HEADER: TOKEN}).json["corrected"][0]
    assert back["reviewed"] is None and back["was_reviewed"] and reviewed(output, "iss038e040838.jpg") is None
    listing = client.get("/api/photos").json
    assert listing["left"] == 6 and all(p["pressing"] in listing["vocabulary"] for p in listing["photos"])


def test_search_by_file_name_covers_the_whole_archive(client):
    client.get(f"/?token={TOKEN}")
    found = client.get("/api/photos?search=E0408").json
    assert [p["path"] for p in found["photos"]] == ["iss038e040838.jpg"] and found["matching"] == 1
    assert found["left"] == 6  # the progress counts the archive, not the search


def test_review_order_puts_rare_tags_near_their_threshold_first():
    def photo(name, reviewed=None, **probabilities):
        tags = [t for t, p in probabilities.items() if p >= 0.5]
        return Record(name, 0, 0, "", "tagged", probabilities, tags, None, reviewed=reviewed)

    common = [photo(f"day{i}.jpg", Day=0.99, Aurora=0.001) for i in range(20)]
    records = common + [photo("unsure-day.jpg", Day=0.55, Aurora=0.001),
                        photo("unsure-aurora.jpg", Day=0.99, Aurora=0.45),
                        photo("hint-of-aurora.jpg", Day=0.99, Aurora=0.2),
                        photo("checked.jpg", "2026-11-24T00:00:00+00:00", Day=0.5, Aurora=0.5)]
    order = [r.path for r in review_order(records, {"Day": 0.5, "Aurora": 0.5})]
    assert order[:3] == ["unsure-aurora.jpg", "hint-of-aurora.jpg", "unsure-day.jpg"]
    assert "checked.jpg" not in order and len(order) == 23
    why = pressing_tags(records, {"Day": 0.5, "Aurora": 0.5})  # what the page says a photo is shown for
    assert why["unsure-aurora.jpg"] == why["hint-of-aurora.jpg"] == "Aurora" and why["unsure-day.jpg"] == "Day"
    assert "checked.jpg" not in why


def test_review_order_spreads_over_the_codes_of_similar_photos():
    def photo(name, aurora, code, reviewed=None):
        return Record(name, 0, 0, "", "tagged", {"Aurora": aurora}, [], None, code=code.to_bytes(8, "little"),
                      code_key="map", reviewed=reviewed)

    burst = [photo(f"burst{i}.jpg", 0.45 - i / 1000, 0) for i in range(3)]  # one scene, near the threshold
    records = burst + [photo("elsewhere.jpg", 0.40, 2**64 - 1), photo("like-a-checked-one.jpg", 0.48, 2**40 - 1),
                       photo("checked.jpg", 0.5, 2**40 - 1, "2026-11-24T00:00:00+00:00")]
    thresholds = {"Aurora": 0.5}
    by_need = [r.path for r in review_order(records, thresholds)]
    assert by_need[:4] == ["like-a-checked-one.jpg", "burst0.jpg", "burst1.jpg", "burst2.jpg"]
    spread = [r.path for r in review_order(records, thresholds, code_key="map")]
    assert spread[:3] == ["burst0.jpg", "elsewhere.jpg", "like-a-checked-one.jpg"]  # then the rest of the burst
    assert sorted(spread) == sorted(by_need)
    assert [r.path for r in review_order(records, thresholds, code_key="another map")] == by_need


def test_the_list_counts_progress(client, output):
    client.get(f"/?token={TOKEN}")
    first = client.get("/api/photos").json
    assert first["left"] == 6 and first["reviewed"] == 0
    client.post("/api/correct", json={"paths": [first["photos"][0]["path"]], "add": [], "remove": []},
                headers={TOKEN_HEADER: TOKEN})  # accepted as it is
    after = client.get("/api/photos").json
    assert after["left"] == 5 and after["reviewed"] == 1 and after["photos"][-1]["reviewed"]


def test_heat_map_and_similar_photos(client):
    client.get(f"/?token={TOKEN}")
    heat = client.get("/heat/iss038e040838.jpg?tag=Aurora")
    assert heat.status_code == 200 and heat.data.startswith(b"\x89PNG")
    assert client.get("/heat/iss038e040838.jpg?tag=Auroras").status_code == 400
    similar = client.get("/api/similar/iss038e040838.jpg").json["results"]
    assert len(similar) == 5 and "iss038e040838.jpg" not in [m["path"] for m in similar]


def test_the_server_listens_on_loopback_only_and_warns_otherwise(output, monkeypatch):
    with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
        assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=") and len(server.token) >= 32
        with urllib.request.urlopen(server.url) as page:
            assert page.status == 200
    monkeypatch.setattr(Server, "wait", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    result = CliRunner().invoke(main, ["review", str(output), "--no-browser", "--host", "127.0.0.2"])
    assert result.exit_code == 130 and "http://127.0.0.2:" in result.output and "warning" not in result.output
    result = CliRunner().invoke(main, ["review", str(output), "--no-browser", "--host", "0.0.0.0"])
    assert result.exit_code == 130 and "warning: listening on 0.0.0.0" in result.output
    missing = CliRunner().invoke(main, ["review", str(output / "nowhere"), "--no-browser"])
    assert missing.exit_code == 2 and "is not a tagged OUTPUT" in missing.output


# --- In a real browser: Debian's chromium, headless, driven by Selenium ---

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ENTER, ESCAPE = "\ue007", "\ue00c"  # selenium's Keys.ENTER and Keys.ESCAPE


def open_browser(width: int, height: int):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (tests/run.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture
def browser():
    driver = open_browser(1400, 900)
    yield driver
    driver.quit()


class Page:
    """The review page in the browser, driven through real key presses."""

    def __init__(self, browser, server):
        from selenium.webdriver.common.by import By

        self.browser, self.by = browser, By
        browser.get(server.url)
        self.paths = [cell.get_attribute("data-path")
                      for cell in wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".cell"))]
        self.body = browser.find_element(By.TAG_NAME, "body")

    def keys(self, *keys):
        self.body.send_keys(*keys)

    def read(self, script: str, *args):
        """Read the page in one step: it redraws its lists after every answer, so found elements go stale."""
        return self.browser.execute_script(script, *args)

    def status(self) -> str:
        return self.read("return document.getElementById('status').textContent")

    def is_error(self) -> bool:
        return self.read("return document.getElementById('status').className") == "error"

    def selected(self) -> str:
        return self.read("return document.querySelector('.cell.selected').dataset.path")

    def ticked(self, tag: str) -> bool:
        return self.read("return document.querySelector(`.tag[data-tag='${arguments[0]}'] input`).checked", tag)

    def idle(self) -> bool:
        return not self.read("return document.querySelectorAll('.tag.busy, .cell.busy').length")

    def box(self, element_id: str) -> dict:
        return self.browser.execute_script(
            "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
            "return {top: r.top, bottom: r.bottom, height: innerHeight, width: innerWidth};", element_id)


def slowed(monkeypatch, seconds: float) -> list:
    """Make every change take ``seconds`` on the server, as a large photo on a slow disk would; log them."""
    import tagger.review.app

    log, real = [], tagger.review.app.correct

    def slow(output, paths, vocabulary, **change):
        time.sleep(seconds)
        done = real(output, paths, vocabulary, **change)
        log.append((list(paths), change))
        return done

    monkeypatch.setattr(tagger.review.app, "correct", slow)
    return log


def wait_for(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page did not get there in time")


def test_a_person_corrects_a_photo_with_the_keyboard(browser, output):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
        browser.get(server.url)
        cells = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".cell"))
        assert len(cells) == 6 and "token" not in browser.current_url  # the token leaves the address bar
        first = cells[0].get_attribute("data-path")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("9")  # the 9th tag of the vocabulary: Moon
        wait_for(lambda: f"{first}: +Moon, saved" in browser.find_element(By.ID, "status").text)
        (meta,) = exiftool(output / first)
        assert "Moon" in as_list(meta["XMP-dc:Subject"]) and "Moon" in as_list(meta["IPTC:Keywords"])
        assert reviewed(output, first)

        body.send_keys("j")  # the next photo, accepted as it is with Enter
        second = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".cell.selected").get_attribute("data-path"))
        assert second != first
        assert browser.find_element(By.ID, "status").text == ""  # no word about the photo left behind
        assert browser.find_element(By.ID, "where").text == f"photo 2 of 6: {second}"
        body.send_keys(Keys.ENTER)
        wait_for(lambda: browser.find_element(By.ID, "progress").text == "2 reviewed · 4 left")
        assert reviewed(output, second)
        if os.environ.get("TERC_TAG_SCREENSHOT"):  # how docs/review.png is made
            body.send_keys("k")
            time.sleep(1)
            browser.save_screenshot(os.environ["TERC_TAG_SCREENSHOT"])
    with pytest.raises(OSError):  # and the server stopped with the block
        urllib.request.urlopen(server.url, timeout=2)


def test_fast_keys_apply_in_order_one_change_at_a_time(browser, output, monkeypatch):
    """1,1 quickly leaves the tag as it was; Enter,Enter accepts two photos in turn, none skipped."""
    log = slowed(monkeypatch, 0.4)
    with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
        page = Page(browser, server)
        first = page.selected()
        page.keys("9", "9")
        assert page.ticked("Moon") is False  # shown at once: added, then taken off again
        wait_for(lambda: page.idle() and len(log) == 2)
        assert [change["add"] for _, change in log] == [["Moon"], []] and log[1][1]["remove"] == ["Moon"]
        assert "Moon" not in State.reader(output).get(first).tags
        page.keys("j", ENTER, ENTER)  # the 2nd photo, then the 3rd: each accepted while shown
        wait_for(lambda: page.idle() and len(log) == 4)
        assert sorted(path for paths, _ in log[2:] for path in paths) == sorted(page.paths[1:3])
        assert all(reviewed(output, path) for path in page.paths[1:3]) and not reviewed(output, page.paths[3])
        assert page.selected() == page.paths[3]
        wait_for(lambda: page.browser.find_element(page.by.ID, "progress").text == "3 reviewed · 3 left")


def test_every_failed_change_is_said_and_undone_on_screen(browser, output, monkeypatch):
    import tagger.review.app

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
        page = Page(browser, server)
        first = page.selected()
        monkeypatch.setattr(tagger.review.app, "correct", broken)  # the server answers an error
        page.keys("9")
        wait_for(lambda: "NOT saved" in page.status() and page.idle())
        assert page.is_error() and "No space left on device" in page.status() and not page.ticked("Moon")
        server.stop()  # the server is gone
        page.keys("8")  # Day: ticked, so this takes it off
        wait_for(lambda: "does not answer" in page.status() and page.idle())
        assert page.is_error() and page.ticked("Day")
        page.keys(ENTER)
        wait_for(lambda: "accepted NOT saved" in page.status() and page.idle())
        assert not page.read("return document.querySelectorAll('.cell .badge').length")  # none shows reviewed
    assert reviewed(output, first) is None


def test_undo_and_hand_back_on_the_page(browser, output):
    with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
        page = Page(browser, server)
        first = page.selected()
        page.keys("9")
        wait_for(lambda: "+Moon, saved" in page.status())
        page.keys("u")  # the mistaken tag
        wait_for(lambda: "undo of +Moon, saved" in page.status())
        record = State.reader(output).get(first)
        assert "Moon" not in record.tags and record.reviewed is None and not page.ticked("Moon")
        page.keys(ENTER)  # a mistaken accept
        wait_for(lambda: reviewed(output, first))
        assert page.selected() != first
        page.keys("u")
        wait_for(lambda: "undo of accepted, saved" in page.status())
        assert reviewed(output, first) is None and page.selected() == first
        page.keys(ENTER, "k")  # accepted again, back to it, and handed back to the model
        wait_for(lambda: reviewed(output, first) and page.selected() == first)
        page.keys("b")
        wait_for(lambda: "handed back to the model, saved" in page.status())
        assert reviewed(output, first) is None and State.reader(output).get(first).run_key == ""


def test_search_and_accept_all_listed_photos(browser, output):
    with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
        page = Page(browser, server)
        page.keys("/")
        page.browser.switch_to.active_element.send_keys("e04")
        listed = wait_for(lambda: page.read("const cells = [...document.querySelectorAll('.cell')];"
                                            "return cells.length === 2 && cells.map(c => c.dataset.path)"))
        assert all("e04" in path for path in listed)
        page.browser.switch_to.active_element.send_keys(ESCAPE)
        page.keys("A")
        alert = wait_for(lambda: _alert(page.browser))
        assert "Accept the 2 listed photos" in alert.text and "e04" in alert.text
        alert.dismiss()  # nothing happens
        time.sleep(0.5)
        assert not any(reviewed(output, path) for path in listed)
        page.keys("A")
        wait_for(lambda: _alert(page.browser)).accept()
        wait_for(lambda: "accepted 2 photos, saved" in page.status())
        state = State.reader(output)
        assert sorted(r.path for r in state.records() if r.reviewed) == sorted(listed)


def _alert(browser):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return browser.switch_to.alert
    except NoAlertPresentException:
        return None


@pytest.mark.parametrize("width, height", [(1400, 900), (1280, 720)])
def test_the_page_fits_the_screen_and_explains_itself(output, tmp_path, width, height):
    """Accept and every tag above the fold, a portrait photo included; the threshold, the reason, the keys."""
    from PIL import Image

    portrait = output / "iss052e033191.jpg"
    Image.open(portrait).rotate(90, expand=True).save(portrait, quality=90)
    browser = open_browser(width, height)
    try:
        with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
            page = Page(browser, server)
            for _ in page.paths:
                accept, tags = page.box("accept"), page.box("tags")
                assert accept["bottom"] <= accept["height"] and tags["bottom"] <= tags["height"], page.selected()
                page.keys("j")
            wait_for(lambda: page.selected() == "iss052e033191.jpg" or page.keys("k"))
            wait_for(lambda: browser.execute_script("const i = document.getElementById('large');"
                                                    "return i.complete && i.naturalHeight > i.naturalWidth"))
            assert page.box("tags")["bottom"] <= page.box("tags")["height"]
            browser.save_screenshot(str(tmp_path / f"portrait-{width}.png"))
            marks = browser.execute_script(
                "return [...document.querySelectorAll('.tag')].map(r => [r.dataset.tag,"
                " parseFloat(r.querySelector('.threshold').style.left.replace('calc(', ''))])")
            thresholds = Review(output, Bundle(DEFAULT_MODEL)).thresholds
            assert len(marks) == len(thresholds) and all(abs(at - 100 * thresholds[tag]) < 0.01 for tag, at in marks)
            why = browser.find_element(page.by.ID, "why").text
            assert why.startswith("shown first for ") and why.split()[3].rstrip(":") in thresholds
            assert not browser.find_element(page.by.ID, "keys").is_displayed()
            page.keys("?")
            keys = browser.find_element(page.by.ID, "keys")
            assert keys.is_displayed() and "undo the last change" in keys.text
            browser.save_screenshot(str(tmp_path / f"keys-{width}.png"))
            if os.environ.get("TERC_TAG_SCREENSHOTS"):
                for shot in tmp_path.glob("*.png"):
                    shutil.copy(shot, Path(os.environ["TERC_TAG_SCREENSHOTS"]) / shot.name)
    finally:
        browser.quit()


def test_a_heat_map_that_is_empty_says_why(browser, output):
    with Server(Review(output, Bundle(DEFAULT_MODEL))) as server:
        page = Page(browser, server)
        wait_for(lambda: page.browser.find_elements(page.by.CSS_SELECTOR, '.tag[data-tag="Moon"] button'))
        probability = float(page.browser.find_element(page.by.CSS_SELECTOR, '.tag[data-tag="Moon"] .value').text)
        assert probability < 0.01
        page.browser.find_element(page.by.CSS_SELECTOR, '.tag[data-tag="Moon"] button').click()
        wait_for(lambda: "heat map of Moon, bright where" in page.status(), timeout=120)
        assert "It is empty: the model gives Moon a probability of 0.00" in page.status()
