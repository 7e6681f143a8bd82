"""A bare Tornado server with one constant-JSON handler: the ceiling for bench_api's ratio.

    .venv/bin/python -m bench._bare_server --port 8888
"""

from __future__ import annotations

import argparse
import asyncio

from tornado.web import Application, RequestHandler

CONSTANT = b'{"id":1,"fraud_probability":0.5,"is_fraud":false}'


class ConstantHandler(RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")

    def get(self) -> None:
        self.finish(CONSTANT)

    def post(self) -> None:
        self.set_status(201)
        self.finish(CONSTANT)


async def main(port: int) -> None:
    Application([(r"/api/.*", ConstantHandler)]).listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
