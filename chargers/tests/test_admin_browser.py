"""The charger back office in a real headless Chromium: log in, find a charger, press a command
button, read the outcome. Needs Debian's chromium and chromium-driver (``.ci/run`` installs them)."""

import shutil

import pytest

from accounts.models import User
from chargers.models import ChargerCommand
from chargers.tests.factories import ChargePointFactory, ConnectorFactory

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromium-driver are not installed"
    ),
]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,HttpsFirstModeV2",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def test_operator_sends_a_command_from_the_charger_page(live_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    User.objects.create_superuser(email="ops@example.com", password="a-long-test-password")
    charger = ChargePointFactory(identity="CP-BROWSER-1", is_online=True)
    ConnectorFactory(charge_point=charger, connector_id=1, status="Faulted")

    browser.get(f"{live_server.url}/admin/login/?next=/admin/chargers/chargepoint/")
    browser.find_element(By.NAME, "username").send_keys("ops@example.com")
    browser.find_element(By.NAME, "password").send_keys("a-long-test-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    row = browser.find_element(By.XPATH, "//tr[.//a[text()='CP-BROWSER-1']]")
    assert "1: Faulted" in row.text
    assert "online" in row.text
    row.find_element(By.LINK_TEXT, "CP-BROWSER-1").click()

    browser.find_element(By.CSS_SELECTOR, "input[value='Request status']").click()
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li").text
    # no socket is registered for this charger: the command fails at once, and says why
    assert "TriggerMessage: failed" in message
    assert "offline" in message
    command = ChargerCommand.objects.get()
    assert command.source == "admin"
    assert command.requested_by.email == "ops@example.com"
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(tmp_path / "charger-page.png"))
    assert (tmp_path / "charger-page.png").stat().st_size > 10_000
