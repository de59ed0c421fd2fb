"""The console in Firefox: a manual check, not part of tests/run (Debian has no geckodriver
package; `cargo install geckodriver --root /opt/geckodriver` builds it, and
`apt-get install firefox-esr` gives the browser; `pip install selenium`).

Run `tandem demo --console --listen 127.0.0.1:0`, then
`python3 tests/python/firefox_check.py URL PASSWORD` with the address and password it prints:
it signs in, presses Pull and waits for the counts, types a broken expression into a rule and
reads the diagnostic and the gutter mark, and opens the Sync Log filtered to errors.
The end-to-end tests in tests/it/console_browser.rs cover the same in Chromium.
"""
import sys, time
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.firefox.options import Options
from selenium.webdriver.firefox.service import Service
from selenium.webdriver.support.ui import WebDriverWait
base, pw = sys.argv[1].rstrip('/'), sys.argv[2]
o = Options(); o.add_argument("-headless")
d = webdriver.Firefox(options=o, service=Service("/opt/geckodriver/bin/geckodriver"))
w = WebDriverWait(d, 30)
try:
    d.get(base + "/")
    w.until(lambda d: d.find_elements(By.ID, "signin"))
    d.find_element(By.ID, "name").send_keys("operator")
    d.find_element(By.ID, "password").send_keys(pw)
    d.find_element(By.ID, "signin").click()
    w.until(lambda d: d.find_elements(By.ID, "h-health"))
    before = d.find_element(By.CSS_SELECTOR, ".lastrun h3 + p").text
    d.find_element(By.ID, "run-pull").click()
    w.until(lambda d: "job 7" in d.find_element(By.TAG_NAME, "body").text or "job 6" in d.find_element(By.TAG_NAME, "body").text)
    w.until(lambda d: "created" in d.find_element(By.CSS_SELECTOR, ".lastrun .counts").text)
    print("firefox: pull ok:", d.find_element(By.CSS_SELECTOR, ".lastrun .counts").text)
    d.get(base + "/rules?file=companies.yaml")
    w.until(lambda d: "No problems" in d.find_element(By.ID, "check-state").text)
    d.execute_script("const s=document.getElementById('source'); s.value=s.value.replace(\"present(record.name) &&\", \"present(record.name) &&&\"); s.dispatchEvent(new Event('input'));")
    w.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#diagnostics li.error"))
    print("firefox: diagnostic:", d.find_element(By.CSS_SELECTOR, "#diagnostics li.error").text)
    print("firefox: gutter marks:", [e.text for e in d.find_elements(By.CSS_SELECTOR, "#gutter div.error")])
    d.get(base + "/log?outcome=errors")
    w.until(lambda d: d.find_elements(By.ID, "log"))
    d.save_screenshot("/work/main/target/screenshots/firefox-log.png")
    print("firefox: log page ok, title", d.title)
finally:
    d.quit()
