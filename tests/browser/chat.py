"""The demo's chat page in a real browser: Debian's Chromium, headless,
driven by Selenium through Debian's chromedriver. Two pages join one room
on two different workers of one server; one types, the other sees the
message and the member count.

    python tests/browser/chat.py BINARY

BINARY is the ferricorn binary; the test starts it on a free loopback
port with 2 workers and stops it at the end. Every wait is bounded.
"""

import os
import signal
import socket
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 15


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_up(port):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"the server on port {port} never became ready")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def join(driver, url, room, name):
    """Opens the page, joins `room` as `name`; the worker it landed on."""
    driver.get(url)
    driver.find_element(By.ID, "room").clear()
    driver.find_element(By.ID, "room").send_keys(room)
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.CSS_SELECTOR, "#join button").click()
    status = WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "status").text.startswith("In ")
        and d.find_element(By.ID, "status").text
    )
    return status.split("on worker ")[1].split(" ")[0]


def log_has(driver, text):
    return WebDriverWait(driver, TIMEOUT).until(
        lambda d: any(text in p.text for p in d.find_elements(By.CSS_SELECTOR, "#log p"))
    )


def main():
    binary = sys.argv[1]
    port = free_port()
    server = subprocess.Popen(
        [binary, "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    )
    drivers = []
    try:
        wait_up(port)
        url = f"http://127.0.0.1:{port}/chat"
        a, b = browser(), browser()
        drivers = [a, b]
        worker_a = join(a, url, "browser", "alice")
        # Join again until the second page sits on the other worker.
        for _ in range(20):
            worker_b = join(b, url, "browser", "bob")
            if worker_b != worker_a:
                break
        else:
            sys.exit(f"20 tries, every page on worker {worker_a}")
        # Both see two members (the presence message of bob's join).
        log_has(a, "2 in browser")
        log_has(b, "2 in browser")
        a.find_element(By.ID, "text").send_keys("hello from another worker")
        a.find_element(By.ID, "send").click()
        log_has(b, "alice: hello from another worker")
        log_has(a, "alice: hello from another worker")
        print(f"browser chat: pages on workers {worker_a} and {worker_b} talked; counts seen")
    finally:
        for d in drivers:
            d.quit()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
