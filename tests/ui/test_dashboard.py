#!/usr/bin/env python3
"""The dashboard in Debian's Chromium (headless, through chromedriver): the overview
updating live while requests flow, finding a session and opening its story, a streamed
playground chat with its route shown, a forced route, the prompts page after a reload, a
message containing <script> shown as text, the page refused from a non-loopback
address, and, on a router with an admin key, signing in from there. tests/ui/run.sh starts the router and its fake backends; this drives the
browser and saves a screenshot of each step.

Usage: UI_ADMIN_KEY=KEY test_dashboard.py --url http://127.0.0.1:PORT
           --outside-url http://ADDR:PORT --keyed-url http://ADDR:PORT2 --prompts DIR --screenshots DIR
"""

import argparse
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMEDRIVER = "/usr/bin/chromedriver"
# A message a careless page would run: it would set window.__xss.
XSS = "what is <script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\"> ?"
FAKE_ANSWER = "This is a fake answer from the test backend."


def chat(url, text, model="ai-router"):
    """One chat through the router's API, as a client would send it."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode()
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=20) as reply:
        assert reply.status == 200, reply.status
        return reply.headers["x-request-id"]


def status_of(url, headers=None):
    """The status and body of a GET, errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Run:
    def __init__(self, args):
        self.args = args
        self.failures = []
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1366,900", "--force-color-profile=srgb"):
            options.add_argument(flag)
        # The page's console, read after each step: a script error fails the step.
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # The driver is the one Debian installed: selenium must never fetch one.
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(20)

    def wait(self, what, condition, timeout=10):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda d: condition())
        except Exception as e:  # selenium's TimeoutException, or a condition's own error
            raise AssertionError(f"timed out waiting for {what}") from e

    def text(self, element_id):
        return self.driver.find_element(By.ID, element_id).text

    def shot(self, name):
        path = os.path.join(self.args.screenshots, f"{name}.png")
        self.driver.save_screenshot(path)
        print(f"  screenshot {path}")

    def console_errors(self):
        """Errors the page's scripts logged since the last call (the log empties as read)."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def check(self, name, step, refusals_expected=False):
        try:
            self.console_errors()
            step()
            errors = self.console_errors()
            # A refused page logs its 401/403 as a failed resource: that is the point there.
            if refusals_expected:
                errors = [e for e in errors if not re.search(r"status of 40[13]", e)]
            errors = [e for e in errors if "favicon.ico" not in e]
            assert not errors, f"the console has errors: {errors}"
            print(f"  ok   {name}")
        except Exception as e:  # report every failing step, then fail the run
            print(f"  FAIL {name}: {e}")
            self.shot(f"FAILED-{name.replace(' ', '-')}")
            self.failures.append(name)

    def go(self, view):
        self.driver.execute_script("location.hash = arguments[0]", view)

    # --- the steps ----------------------------------------------------------------

    def overview_updates_live(self):
        url = self.args.url
        self.driver.get(f"{url}/dashboard#/overview")
        self.wait("the live feed", lambda: self.text("live-status").startswith("live"))
        self.wait("a first overview", lambda: self.text("ov-requests") not in ("", "–"))
        before = int(self.text("ov-requests"))
        # A mark on this very page: it must still be there, so nothing reloaded it.
        self.driver.execute_script("window.__same_page = true")
        sent = []
        flow = threading.Thread(target=lambda: sent.extend(
            chat(url, t) for t in ["hello", "what is the latest news today", "prove this theorem", XSS]
        ))
        flow.start()
        flow.join(30)
        assert len(sent) == 4, "the chats were answered"
        self.wait("the overview to count the new requests",
                  lambda: int(self.text("ov-requests")) >= before + 4, timeout=10)
        assert self.driver.execute_script("return window.__same_page === true"), "the page reloaded"
        bars = self.driver.find_elements(By.CSS_SELECTOR, "#ov-chart .part")
        assert bars, "the per-minute chart has bars"
        backends = self.text("ov-backends")
        assert "classifier" in backends and "up" in backends, backends
        assert "ms" in self.text("ov-latency"), self.text("ov-latency")
        # The COMPLEX chat went to the (priced) cloud model: today's spend is not nothing.
        self.wait("today's cloud spend", lambda: self.text("ov-spend") not in ("$0.00", "–"))
        # What the card says adds up: spent + saved = what all-cloud would have cost.
        spent = float(self.text("ov-spend").lstrip("$"))
        found = re.search(r"all-cloud would be \$([0-9.]+) today, saved \$([0-9.]+)", self.text("ov-spend-sub"))
        assert found, self.text("ov-spend-sub")
        all_cloud, saved = float(found.group(1)), float(found.group(2))
        assert abs(spent + saved - all_cloud) < 2e-6, (spent, saved, all_cloud)
        self.shot("01-overview")

    def finds_a_session_and_its_story(self):
        self.go("#/sessions")
        form = self.driver.find_element(By.ID, "filters")
        query = form.find_element(By.NAME, "q")
        query.clear()
        query.send_keys("<script>")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait("the filtered list", lambda: "1 sessions" in self.text("sessions-count"))
        row = self.driver.find_element(By.CSS_SELECTOR, "#sessions-rows tr")
        assert XSS in row.text, f"the query shows as text: {row.text!r}"
        self.assert_not_run()
        self.shot("02-sessions-filtered")
        row.find_element(By.CSS_SELECTOR, "a.session-link").click()
        self.wait("the story", lambda: "hello" not in self.text("story-messages") and XSS in self.text("story-messages"))
        self.wait("the steps", lambda: "answer" in self.text("story-steps"))
        facts = self.text("story-facts")
        assert "label" in facts and "route" in facts, facts
        assert FAKE_ANSWER in self.text("story-answer")
        self.assert_not_run()
        self.shot("03-session-story")
        # And back: the story links to the list of its route.
        self.driver.find_element(By.ID, "story-same-route").click()
        self.wait("the route's list", lambda: "sessions" in self.text("sessions-count")
                  and "route=primary" in self.driver.current_url)

    def assert_not_run(self):
        ran = self.driver.execute_script("return window.__xss")
        assert ran is None, f"a message's markup ran ({ran})"
        scripts = self.driver.execute_script("return document.scripts.length")
        assert scripts == 1, f"{scripts} script elements (only app.js is ours)"

    def playground_streams(self, route_choice=None, expect_route="primary", name="04-playground"):
        self.go("#/playground")
        if route_choice:
            self.wait("the route choices", lambda: len(Select(self.driver.find_element(By.ID, "play-route")).options) > 1)
            Select(self.driver.find_element(By.ID, "play-route")).select_by_value(route_choice)
        box = self.driver.find_element(By.ID, "play-input")
        box.send_keys("hi from the playground")
        self.driver.find_element(By.ID, "play-send").click()
        # The answer grows piece by piece while it streams.
        seen = set()
        deadline = time.time() + 15
        while time.time() < deadline:
            answers = self.driver.find_elements(By.CSS_SELECTOR, "#play-log .msg.assistant > .text")
            text = answers[-1].text if answers else ""
            if text:
                seen.add(text)
            if text == FAKE_ANSWER:
                break
            time.sleep(0.03)
        assert FAKE_ANSWER in seen, f"the whole answer arrived: {seen}"
        assert len(seen) >= 2, f"the answer arrived in pieces, not at once: {seen}"
        self.wait("the route", lambda: expect_route in self.text("play-facts"))
        self.wait("the steps' timings", lambda: "answer" in self.text("play-steps"))
        facts = self.text("play-facts")
        if route_choice:
            assert "chosen by client" in facts, facts
            assert "classify" not in self.text("play-steps"), "a chosen route skips the classifier"
        else:
            assert "classifier said" in facts, facts
            assert "classify" in self.text("play-steps")
        self.shot(name)

    def prompt_shown(self, name):
        """The prompt `name` as the page shows it: its loaded time, error and text."""
        return self.driver.execute_script("""
            const d = document.querySelector(`#prompts-list details[data-name="${arguments[0]}"]`);
            if (!d) return null;
            const error = d.querySelector('.reload-error');
            return {loaded: d.querySelector('.loaded').textContent,
                    error: error ? error.textContent : null,
                    text: d.querySelector('pre').textContent};""", name)

    def prompts_after_a_reload(self):
        self.go("#/prompts")
        self.wait("the prompts", lambda: self.prompt_shown("primary/system.md"))
        before = self.prompt_shown("primary/system.md")
        time.sleep(1.1)  # the page shows seconds: a reload in the same second would look the same
        marker = "UI TEST EDIT <b>stays text</b>"
        with open(os.path.join(self.args.prompts, "primary", "system.md"), "a", encoding="utf-8") as f:
            f.write(f"\n{marker}\n")
        # And a broken edit: a file emptied is refused, its last good text kept.
        broken = os.path.join(self.args.prompts, "meta", "system.md")
        with open(broken, encoding="utf-8") as f:
            good = f.read().strip()
        open(broken, "w", encoding="utf-8").close()

        def reloaded():
            self.go("#/overview")
            self.go("#/prompts")
            time.sleep(0.3)
            edited = self.prompt_shown("primary/system.md") or {}
            failed = self.prompt_shown("meta/system.md") or {}
            return marker in edited.get("text", "") and failed.get("error")
        self.wait("the edited prompt and the refused one after their reload", reloaded, timeout=15)
        after = self.prompt_shown("primary/system.md")
        assert after["loaded"] != before["loaded"], (before["loaded"], after["loaded"])
        assert not self.driver.find_elements(By.CSS_SELECTOR, "#prompts-list pre b"), "a prompt's markup stays text"
        failed = self.prompt_shown("meta/system.md")
        assert "empty" in failed["error"], failed["error"]
        assert failed["text"] == good, "the last good text is kept"
        self.driver.execute_script("""
            for (const d of document.querySelectorAll('#prompts-list details'))
                d.open = ['primary/system.md', 'meta/system.md'].includes(d.dataset.name);
            document.querySelector('#prompts-list details[data-name="primary/system.md"]').scrollIntoView();""")
        self.shot("06-prompts-after-reload")
        self.driver.execute_script(
            "document.querySelector('#prompts-list details[data-name=\"meta/system.md\"]').scrollIntoView()")
        self.shot("06b-prompt-reload-error")

    def phone_and_dark(self):
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                    {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        self.driver.set_window_size(390, 844)
        self.go("#/overview")
        self.wait("the overview", lambda: self.text("ov-requests") not in ("", "–"))
        background = self.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background != "rgb(247, 247, 248)", f"dark scheme applied: {background}"
        width = self.driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, f"no sideways scrolling on a phone: {width}px"
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.shot("07-overview-phone-dark")
        self.go("#/playground")
        time.sleep(0.3)
        self.shot("08-playground-phone-dark")
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        self.driver.set_window_size(1366, 900)

    def refused_from_outside(self):
        outside = self.args.outside_url
        self.driver.get(f"{outside}/dashboard")
        body = self.driver.find_element(By.TAG_NAME, "body").text
        assert "dashboard_forbidden" in body and "loopback" in body, body
        self.shot("09-refused-from-outside")
        # A forged header does not open it either; the router keeps serving.
        status, text = status_of(f"{outside}/dashboard/api/sessions", {"X-Forwarded-For": "127.0.0.1"})
        assert status == 403 and "permission_error" in text, (status, text)
        status, _ = status_of(f"{outside}/health")
        assert status == 200, status

    def signs_in_with_the_admin_key(self):
        keyed = self.args.keyed_url
        status, text = status_of(f"{keyed}/dashboard/api/overview", {"X-Forwarded-For": "127.0.0.1"})
        assert status == 401 and "invalid_admin_key" in text, (status, text)
        self.driver.get(f"{keyed}/dashboard")
        self.wait("the sign-in form", lambda: self.driver.current_url.endswith("/dashboard/login"))
        field = self.driver.find_element(By.ID, "login-key")
        field.send_keys("not the key")
        self.driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        self.wait("the refusal", lambda: "not valid" in self.text("login-error"))
        self.shot("10-sign-in-refused")
        field.clear()
        field.send_keys(os.environ["UI_ADMIN_KEY"])
        self.driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
        self.wait("the dashboard", lambda: self.driver.current_url.endswith("/dashboard"))
        self.wait("the live feed", lambda: self.text("live-status").startswith("live"))
        cookie = self.driver.get_cookie("ai_router_admin")
        assert cookie and cookie["httpOnly"], cookie
        assert os.environ["UI_ADMIN_KEY"] not in cookie["value"], "the cookie is not the key"
        assert os.environ["UI_ADMIN_KEY"] not in self.driver.page_source, "the key is never shown"
        self.shot("11-signed-in-from-outside")

    def run(self):
        try:
            self.check("overview updates live while requests flow", self.overview_updates_live)
            self.check("a session found and its story opened", self.finds_a_session_and_its_story)
            self.check("a streamed playground chat shows its route",
                       lambda: self.playground_streams())
            self.check("a forced route", lambda: self.playground_streams(
                route_choice="COMPLEX", expect_route="xai", name="05-playground-forced-route"))
            self.check("the prompts page after a reload", self.prompts_after_a_reload)
            self.check("a phone in dark mode", self.phone_and_dark)
            self.check("refused from a non-loopback address", self.refused_from_outside,
                       refusals_expected=True)
            self.check("signed in with the admin key from there", self.signs_in_with_the_admin_key,
                       refusals_expected=True)
        finally:
            self.driver.quit()
        return not self.failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--outside-url", required=True)
    parser.add_argument("--keyed-url", required=True, help="a router with an admin key (UI_ADMIN_KEY)")
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--screenshots", required=True)
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    ok = Run(args).run()
    print("dashboard in Chromium:", "passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
