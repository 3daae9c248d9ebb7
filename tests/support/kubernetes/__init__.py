"""The Kubernetes API emulator and its kubelet: a real HTTP server speaking the API (kmock style),
with the cluster behaviours the adapters meet, for tests/kubernetes."""
