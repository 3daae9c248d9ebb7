"""An nginx edge cache for the edge-outage scenario, declared as a service: writes a
configuration for one edge (listen port, origin, a small proxy cache) into a private temporary
directory and becomes nginx (exec: the service's process is nginx itself, in the foreground,
one process, so `process.kill` on the service kills the edge and nothing restarts it).

    python -m chaos.demo.edge --port 18331 --origin 127.0.0.1:18330 --name edge-a

Answers carry `X-Edge: NAME` and `X-Cache: HIT|MISS|...`; GET /health is answered by the edge
itself. Needs the nginx package.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

from chaos.demo.serving import sweep_stale_dirs

CONFIG = """daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_cache_path {dir}/cache keys_zone=edge:1m max_size=10m;
    server {{
        listen {host}:{port};
        add_header X-Edge {name} always;
        location = /health {{ return 200 '"ok"'; }}
        location / {{
            proxy_pass http://{origin};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_valid 200 {ttl};
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503;
            add_header X-Cache $upstream_cache_status always;
        }}
    }}
}}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.demo.edge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--origin", required=True, help="HOST:PORT of the origin")
    parser.add_argument("--name", default="edge", help="sent back as X-Edge")
    parser.add_argument("--ttl", default="1s", help="how long a 200 answer is cached")
    args = parser.parse_args(argv)
    program = shutil.which("nginx")
    if program is None:
        print("nginx not found: install the nginx package", file=sys.stderr)
        return 1
    sweep_stale_dirs("chaos-edge-", "nginx.pid")
    directory = tempfile.mkdtemp(prefix=f"chaos-edge-{args.name}-")
    os.mkdir(os.path.join(directory, "logs"))  # nginx opens its default error log before -c
    config = os.path.join(directory, "nginx.conf")
    with open(config, "w", encoding="utf-8") as file:
        file.write(CONFIG.format(dir=directory, host=args.host, port=args.port,
                                 origin=args.origin, name=args.name, ttl=args.ttl))
    sys.stdout.flush()
    os.execv(program, [program, "-p", directory, "-c", config])


if __name__ == "__main__":
    sys.exit(main())
