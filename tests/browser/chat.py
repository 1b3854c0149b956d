"""The demo's chat page in a real browser: Debian's Chromium, headless,
driven by Selenium through Debian's chromedriver. Two pages join one room
on two different ferricorn servers that share one Redis; one types, the
other sees the message and the member count over both servers. A third
page joins over HTTPS from a third server (TLS, certificates made with
openssl): Chromium opens its WebSocket as an HTTP/2 stream (RFC 8441),
which that server's access log shows.

    python tests/browser/chat.py BINARY

BINARY is the ferricorn binary; the test starts Debian's redis-server and
two servers of 2 workers each, on free loopback ports, and stops them at
the end. Every wait is bounded.
"""

import os
import shutil
import signal
import tempfile
import socket
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 15


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_answer(port, ask, answer, what):
    """Until `ask` sent to `port` is answered with `answer` (bounded)."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(ask)
                if s.recv(64).startswith(answer):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{what} on port {port} never answered")


def wait_up(port):
    ask = b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    wait_answer(port, ask, b"HTTP/1.1 200", "the server")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    # The third server's certificate is the test's own.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--ignore-certificate-errors"):
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


def page_log(driver):
    return [p.text for p in driver.find_elements(By.CSS_SELECTOR, "#log p")]


def log_has(driver, text, pages):
    """Until `driver`'s page shows `text` (bounded); on a timeout, exits
    with what every page shows."""
    try:
        WebDriverWait(driver, TIMEOUT).until(lambda d: any(text in t for t in page_log(d)))
    except TimeoutException:
        seen = "; ".join(f"page {i}: {page_log(d)}" for i, d in enumerate(pages))
        sys.exit(f"{text!r} never appeared within {TIMEOUT} s ({seen})")


def certificate(tmp):
    """A self-signed certificate for localhost and its key, in `tmp`."""
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def redis_up(port):
    wait_answer(port, b"PING\r\n", b"+PONG", "redis-server")


def main():
    binary = sys.argv[1]
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    servers, drivers = [], []
    tmp = tempfile.mkdtemp(prefix="ferricorn-browser-")
    try:
        redis_up(redis_port)
        layer = ["--channel-layer", f"redis://127.0.0.1:{redis_port}/0", "--log-level", "warning"]
        ports = [free_port(), free_port()]
        for port in ports:
            servers.append(subprocess.Popen([binary, "-w", "2", "-b", f"127.0.0.1:{port}"] + layer))
        https, plain = free_port(), free_port()
        cert, key = certificate(tmp)
        access = os.path.join(tmp, "access.log")
        servers.append(subprocess.Popen([
            binary, "-w", "1", "-b", f"127.0.0.1:{https}", "--certfile", cert, "--keyfile", key,
            "--insecure-bind", f"127.0.0.1:{plain}", "--access-logfile", access] + layer))
        for port in ports + [plain]:
            wait_up(port)
        a, b = browser(), browser()
        drivers = [a, b]
        worker_a = join(a, f"http://127.0.0.1:{ports[0]}/chat", "browser", "alice")
        worker_b = join(b, f"http://127.0.0.1:{ports[1]}/chat", "browser", "bob")
        # Both see two members, counted over both servers (the presence
        # message of bob's join, which reaches alice through Redis).
        log_has(a, "2 in browser", drivers)
        log_has(b, "2 in browser", drivers)
        a.find_element(By.ID, "text").send_keys("hello from another server")
        a.find_element(By.ID, "send").click()
        log_has(b, "alice: hello from another server", drivers)
        log_has(a, "alice: hello from another server", drivers)
        b.find_element(By.ID, "text").send_keys("and back")
        b.find_element(By.ID, "send").click()
        log_has(a, "bob: and back", drivers)
        # Over HTTPS, the WebSocket an HTTP/2 stream; the room spans it too.
        c = browser()
        drivers.append(c)
        join(c, f"https://localhost:{https}/chat", "browser", "carol")
        log_has(a, "3 in browser", drivers)
        c.find_element(By.ID, "text").send_keys("over h2")
        c.find_element(By.ID, "send").click()
        log_has(a, "carol: over h2", drivers)
        log_has(b, "carol: over h2", drivers)
        wanted = '"CONNECT /ws/chat/browser HTTP/2.0" 200'
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            with open(access) as f:
                if wanted in f.read():
                    break
            time.sleep(0.1)
        else:
            sys.exit(f"no {wanted} in the HTTPS server's access log")
        print(
            f"browser chat: pages on two servers (ports {ports[0]} worker {worker_a}, "
            f"{ports[1]} worker {worker_b}) sharing one Redis talked; counts seen; "
            f"a third over HTTPS, its WebSocket on an HTTP/2 stream"
        )
    finally:
        for d in drivers:
            d.quit()
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                server.kill()
        redis.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
