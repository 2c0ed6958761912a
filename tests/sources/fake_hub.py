"""A local stand-in for the Hugging Face Hub: the endpoints hf_hub_download and model_info use.

HEAD/GET /{repo}/resolve/{revision}/{file}  (ETag, X-Repo-Commit, Content-Length, Range -> 206)
GET /api/models/{repo}[/revision/{revision}] (JSON with sha and siblings, for glob listing)
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    cut_after: int | None = None  # the next full GET sends only this many bytes, then hangs up
    pause_after: int | None = None  # the next full GET sends this many bytes, waits for release
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def gets(self, name: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + name)]

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append(Request(self.command, path, self.headers.get("Range")))
                if path.startswith("/api/models/"):
                    return self._api(path[len("/api/models/") :])
                parts = path.strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._send(404, b"not found", {})
                repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                files = hub.repos.get(repo)
                if files is None:
                    return self._send(401, b"repo not found", {"X-Error-Code": "RepoNotFound"})
                if name not in files:
                    return self._send(
                        404,
                        b"entry not found",
                        {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT},
                    )
                data = files[name]
                headers = {
                    "ETag": '"' + hashlib.sha256(data).hexdigest() + '"',
                    "X-Repo-Commit": COMMIT,
                    "Accept-Ranges": "bytes",
                }
                rng = self.headers.get("Range")
                if rng and body:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    return self._send(206, data[start:], headers)
                if body and hub.pause_after is not None:
                    pause, hub.pause_after = hub.pause_after, None
                    headers["Content-Length"] = str(len(data))
                    self._head(200, headers)
                    self.wfile.write(data[:pause])
                    self.wfile.flush()
                    hub.release.wait(60)
                    self.wfile.write(data[pause:])
                    return None
                if body and hub.cut_after is not None:
                    cut, hub.cut_after = hub.cut_after, None
                    headers["Content-Length"] = str(len(data))
                    self._head(200, headers)
                    self.wfile.write(data[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                return self._send(200, data if body else b"", headers, length=len(data))

            def _api(self, rest: str) -> None:
                repo = "/".join(rest.split("/")[:2])
                if repo not in hub.repos:
                    return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"})
                info = {
                    "id": repo,
                    "sha": COMMIT,
                    "siblings": [{"rfilename": n} for n in sorted(hub.repos[repo])],
                }
                return self._send(
                    200, json.dumps(info).encode(), {"Content-Type": "application/json"}
                )

            def _head(self, status: int, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()

            def _send(
                self, status: int, data: bytes, headers: dict[str, str], length: int | None = None
            ) -> None:
                headers = {
                    **headers,
                    "Content-Length": str(len(data) if length is None else length),
                }
                self._head(status, headers)
                if self.command != "HEAD":
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
