{
  "targets": [
    {
      "target_name": "udp_send",
      "sources": ["src/shared/native/udp_send.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
