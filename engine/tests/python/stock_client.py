"""A stock WebSocket client (Python `websockets`) using tickwire's JSON protocol exactly as the
README documents it. Exits 0 and prints "ok" if every check passes.

Usage: python3 stock_client.py ws://127.0.0.1:PORT/ws
"""

import asyncio
import json
import sys
from decimal import Decimal

import websockets


async def reply(ws, kind):
    """Reads messages until one of type `kind` (or an error) arrives."""
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if msg["type"] in (kind, "error"):
            return msg


async def main(url):
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "list", "id": 1}))
        listed = await reply(ws, "instruments")
        assert listed["id"] == 1 and "binance:BTCUSDT" in listed["symbols"], listed

        await ws.send(json.dumps({"op": "subscribe", "id": 2, "symbols": ["binance:BTCUSDT"],
                                  "channels": ["trades", "quotes"], "encoding": "json",
                                  "policy": "lossless"}))
        ack = await reply(ws, "subscribed")
        assert ack["id"] == 2 and ack["symbols"] == ["binance:BTCUSDT"], ack
        assert ack["policy"] == "lossless", ack

        header = ["type", "venue", "symbol", "seq", "ts_exchange", "ts_recv", "ts_publish", "flags"]
        trades, quotes, last_seq = 0, 0, {}
        while trades < 20 or quotes < 20:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if msg["type"] in ("definition", "status", "heartbeat"):
                continue
            for field in header:
                assert field in msg, (field, msg)
            assert msg["venue"] == "binance" and msg["symbol"] == "BTCUSDT", msg
            if msg["type"] == "trade":
                trades += 1
                assert Decimal(msg["price"]) > 0 and Decimal(msg["qty"]) > 0, msg
                assert msg["side"] in ("buy", "sell", "unknown"), msg
                assert isinstance(msg["trade_id"], str), msg
            elif msg["type"] == "quote":
                quotes += 1
                assert Decimal(msg["bid_px"]) < Decimal(msg["ask_px"]), msg
            else:
                raise AssertionError(f"unexpected frame {msg}")
            prev = last_seq.get(msg["type"])
            assert prev is None or msg["seq"] == prev + 1, (prev, msg)
            last_seq[msg["type"]] = msg["seq"]
            assert msg["ts_publish"] >= msg["ts_recv"] > 0, msg

        await ws.send(json.dumps({"op": "ping", "id": 3}))
        pong = await reply(ws, "pong")
        assert pong["id"] == 3 and pong["ts"] > 0, pong

        await ws.send(json.dumps({"op": "subscribe", "id": 4, "symbols": ["binance:NOPE"]}))
        err = await reply(ws, "error")
        assert err["type"] == "error" and err["id"] == 4 and err["code"] == "unknown_symbol", err

        await ws.send(json.dumps({"op": "unsubscribe", "id": 5, "symbols": ["binance:BTCUSDT"]}))
        unsub = await reply(ws, "unsubscribed")
        assert unsub["id"] == 5, unsub

        await ws.close(code=1000, reason="done")
        assert ws.close_code == 1000, ws.close_code
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
