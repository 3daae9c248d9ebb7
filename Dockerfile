# The chaos image: the CLI (for running experiments in a Job) and the in-pod agent that the
# Kubernetes adapter's ephemeral containers run (`python -m chaos.adapters.kubernetes.inpod_agent`).
# What it must contain, and why, is in docs/kubernetes-inpod.md ("The image").
#   docker build -t ghcr.io/chaos-runner/chaos:0.1.0 .
#   kind load docker-image ghcr.io/chaos-runner/chaos:0.1.0     # for a kind cluster
FROM python:3.11-slim-bookworm

# tc and ip (iproute2) shape and check the pod's device; nft (nftables) drops packets in a table
# chaos owns; iptables is the fallback where a node's kernel lacks nf_tables.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables iptables \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY chaos ./chaos
RUN pip install --no-cache-dir --no-compile . \
 && rm -rf /src

WORKDIR /
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric non-root user (the kubelet can only verify runAsNonRoot for a numeric USER): the CLI
# Job and the in-pod CPU/memory agent run as it and pass Pod Security "restricted". The network
# agent's container sets runAsUser: 0 with NET_ADMIN itself (ephemeral_spec.NETWORK_CONTEXT), and
# container.kill's runs as the target app's user (ephemeral_spec.kill_context).
USER 65532:65532
# Ephemeral containers set their own command; a Job runs `chaos run ...` with this entrypoint.
ENTRYPOINT ["chaos"]
CMD ["--help"]
