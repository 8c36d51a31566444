# Closed-loop load for benches/callgrind_server.sh: python3 callgrind_load.py HOST:PORT REQUESTS CONNECTIONS plain|stream
import http.client, json, sys, threading
host, port = sys.argv[1].split(':'); n = int(sys.argv[2]); conns = int(sys.argv[3]); stream = sys.argv[4] == 'stream'
body = {"model":"genscope-sim","max_tokens":8,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the plot of a short story about a lighthouse keeper who finds a message in a bottle"}]}
if stream: body["stream"] = True; body["stream_options"] = {"include_usage": True}
data = json.dumps(body)
def worker(k):
    c = http.client.HTTPConnection(host, int(port), timeout=120)
    for _ in range(k):
        c.request("POST", "/v1/chat/completions", data, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read(); assert r.status == 200, r.status
ts = [threading.Thread(target=worker, args=(n // conns,)) for _ in range(conns)]
[t.start() for t in ts]; [t.join() for t in ts]
