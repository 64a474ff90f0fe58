#!/usr/bin/env python3
"""A/B of fetch sessions (KIP-227) for a consumer tailing many partitions: bench/ab-fetch-sessions.py PAIRS
(or of two broker builds, both with sessions: bench/ab-fetch-sessions.py PAIRS BROKER_A BROKER_B)

Alternates a broker with sessions (default) and one with --max-incremental-fetch-session-cache-slots 0,
each fresh on a temp dir: runnel-bench e2e over 1 000 partitions at 5 000 msg/s (a 2 s warm-up run creates
the topic), then a 10 s measured run after a 1 s warm-up; prints the broker CPU of the measured run (from /proc), the bench
process's CPU and the end-to-end latency. Run from the repository root after cargo build --release."""
import json,subprocess,sys,time,os,socket,tempfile,shutil
TICK=os.sysconf('SC_CLK_TCK')
def cpu(pid):
    f=open(f"/proc/{pid}/stat").read().rsplit(')',1)[1].split()
    return (int(f[11])+int(f[12]))/TICK
def free_port():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
def run(tag, extra, broker="target/release/runnel-broker"):
    d=tempfile.mkdtemp(dir="/tmp"); port=free_port(); hport=free_port()
    b=subprocess.Popen([broker,"--data-dir",d,"--listen",f"127.0.0.1:{port}","--http-listen",f"127.0.0.1:{hport}"]+extra,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    base=["target/release/runnel-bench","e2e","--bootstrap",f"127.0.0.1:{port}","--topic","t","--partitions","1000","--rate","5000","--message-bytes","1000","--json","--quiet"]
    subprocess.run(base+["--seconds","2"],capture_output=True)
    c0=cpu(b.pid)
    p=subprocess.run(["/usr/bin/time","-f","%U %S"]+base+["--seconds","10","--warmup-seconds","1"],capture_output=True,text=True)
    c1=cpu(b.pid)
    t=p.stderr.strip().splitlines()[-1].split()
    out=json.loads(p.stdout)
    b.terminate(); b.wait(); shutil.rmtree(d)
    e=out["consume"]["end_to_end_latency_us"]
    print(f"{tag:7} broker cpu {c1-c0:5.2f} s bench cpu {float(t[0])+float(t[1]):5.2f} s  e2e p50 {e['p50']/1000:5.2f} p99 {e['p99']/1000:6.2f} p99.9 {e['p999']/1000:6.2f} ms  recv {out['consume']['messages_received']}/{out['consume']['messages_expected']}", flush=True)
for i in range(int(sys.argv[1])):
    if len(sys.argv)==4:
        order=[("A",[],sys.argv[2]),("B",[],sys.argv[3])]
    else:
        order=[("sess",[],"target/release/runnel-broker"),("nosess",["--max-incremental-fetch-session-cache-slots","0"],"target/release/runnel-broker")]
    if i%2: order.reverse()
    for tag,extra,broker in order: run(tag,extra,broker)
