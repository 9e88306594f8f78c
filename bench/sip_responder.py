#!/usr/bin/env python3
"""Answers SIP OPTIONS with 200 OK on COUNT UDP ports of 127.0.0.1 (BASE .. BASE+COUNT-1).

Used by probe-load.sh to measure what probing 10,000 servers costs sipsteer.
Usage: sip_responder.py BASE COUNT
"""
import asyncio
import resource
import sys

HEADERS = ("via:", "v:", "from:", "f:", "to:", "t:", "call-id:", "i:", "cseq:")


def reply(req: bytes) -> bytes:
    lines = req.decode("utf-8", "replace").split("\r\n")
    out = ["SIP/2.0 200 OK"]
    for line in lines[1:]:
        if line.lower().startswith(HEADERS):
            out.append(line + (";tag=r1" if line.lower().startswith(("to:", "t:")) else ""))
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode()


class Proto(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        if data.startswith(b"OPTIONS "):
            self.t.sendto(reply(data), addr)


async def main(base: int, count: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    loop = asyncio.get_running_loop()
    for p in range(base, base + count):
        await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", p))
    print(f"answering on 127.0.0.1:{base}-{base + count - 1}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
