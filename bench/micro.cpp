// google-benchmark micro-benchmarks of ndshm (C++ calling the C API), one process:
//   publish by copy and by loan+commit, 64 B ... 33 MB; read latest / read next by copy and by
//   view, uncontended; a wait/wake round trip between two threads; the cost of a
//   re-allocation. Run: build/bin/ndshm-micro [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "ndshm/ndshm.h"

namespace
{

std::string chan_name(const char *what)
{
    static int serial;
    return "ndshm-micro-" + std::to_string(getpid()) + "-" + what + "-" + std::to_string(serial++);
}

uint64_t now()
{
    return ndshm_now_ns();
}

void check(int rc, const char *what)
{
    if (rc < 0) {
        std::fprintf(stderr, "%s: %s\n", what, ndshm_strerror(rc));
        std::abort();
    }
}

struct Channel {
    ndshm_writer *w = nullptr;
    ndshm_reader *r = nullptr;
    std::string name;
    explicit Channel(uint64_t capacity, uint32_t slots = 4, bool reader = true,
                     uint32_t spin_ns = 0)
    {
        name = chan_name("c");
        ndshm_options o = NDSHM_OPTIONS_INIT;
        o.flags = NDSHM_UNLINK_ON_CLOSE;
        o.capacity = capacity;
        o.slots = slots;
        check(ndshm_writer_create(name.c_str(), &o, &w), "writer_create");
        if (reader) {
            ndshm_options ro = NDSHM_OPTIONS_INIT;
            ro.spin_ns = spin_ns;
            check(ndshm_reader_open(name.c_str(), &ro, &r), "reader_open");
        }
    }
    ~Channel()
    {
        ndshm_reader_close(r);
        ndshm_writer_close(w);
    }
};

void sizes(benchmark::internal::Benchmark *b)
{
    for (int64_t s : {64, 4096, 65536, 1048576, 6220800, 33177600})
        b->Arg(s);
}

void BM_Publish(benchmark::State &st)
{
    uint64_t n = (uint64_t)st.range(0);
    Channel c(n, 4, false);
    std::vector<unsigned char> src(n, 1);
    uint64_t shape[1] = {n};
    for (auto _ : st)
        check(ndshm_publish(c.w, NDSHM_UINT8, 1, shape, src.data(), nullptr), "publish");
    st.SetBytesProcessed((int64_t)(st.iterations() * n));
}
BENCHMARK(BM_Publish)->Apply(sizes);

// Loan + commit; the payload is not written (that is the producer's work, not ndshm's).
void BM_LoanCommit(benchmark::State &st)
{
    uint64_t n = (uint64_t)st.range(0);
    Channel c(n, 4, false);
    uint64_t shape[1] = {n};
    for (auto _ : st) {
        void *p;
        check(ndshm_loan(c.w, NDSHM_UINT8, 1, shape, &p), "loan");
        benchmark::DoNotOptimize(p);
        check(ndshm_commit(c.w, nullptr), "commit");
    }
}
BENCHMARK(BM_LoanCommit)->Apply(sizes);

// Reads: each iteration needs a new version, made outside the timed region (manual time
// measures only the read call). The copy benchmarks publish it by copy: the read costs as much
// as the publish, so the loop count google-benchmark derives from the read time stays sane.
// The view benchmarks make it by loan + commit without writing the payload (a view does not
// touch it): publishing 6 MB by copy for a 0.3 µs view made the loop run ~10^6 untimed
// megabyte copies, tens of minutes per size.
template <int Kind> void BM_Read(benchmark::State &st)
{
    uint64_t n = (uint64_t)st.range(0);
    Channel c(n);
    std::vector<unsigned char> src(n, 2), dst(Kind < 2 ? n : 1);
    uint64_t shape[1] = {n};
    if (Kind >= 2) /* the first version fills the slots' pages once */
        for (int i = 0; i < 8; i++)
            check(ndshm_publish(c.w, NDSHM_UINT8, 1, shape, src.data(), nullptr), "publish");
    for (auto _ : st) {
        if (Kind < 2) {
            check(ndshm_publish(c.w, NDSHM_UINT8, 1, shape, src.data(), nullptr), "publish");
        } else {
            void *p;
            check(ndshm_loan(c.w, NDSHM_UINT8, 1, shape, &p), "loan");
            check(ndshm_commit(c.w, nullptr), "commit");
        }
        ndshm_info info;
        ndshm_view v;
        int rc = 0;
        uint64_t t0 = now();
        switch (Kind) {
        case 0:
            rc = ndshm_read_latest(c.r, dst.data(), n, &info);
            break;
        case 1:
            rc = ndshm_read_next(c.r, dst.data(), n, &info);
            break;
        case 2:
            rc = ndshm_view_latest(c.r, &v);
            if (rc == NDSHM_OK)
                rc = ndshm_view_release(&v);
            break;
        case 3:
            rc = ndshm_view_next(c.r, &v);
            if (rc == NDSHM_OK)
                rc = ndshm_view_release(&v);
            break;
        }
        uint64_t t1 = now();
        if (rc != NDSHM_OK)
            st.SkipWithError(ndshm_strerror(rc));
        st.SetIterationTime((double)(t1 - t0) * 1e-9);
    }
}
BENCHMARK_TEMPLATE(BM_Read, 0)->Name("BM_ReadLatestCopy")->Apply(sizes)->UseManualTime();
BENCHMARK_TEMPLATE(BM_Read, 1)->Name("BM_ReadNextCopy")->Apply(sizes)->UseManualTime();
BENCHMARK_TEMPLATE(BM_Read, 2)->Name("BM_ViewLatest")->Apply(sizes)->UseManualTime();
BENCHMARK_TEMPLATE(BM_Read, 3)->Name("BM_ViewNext")->Apply(sizes)->UseManualTime();

// Wait/wake round trip between two threads over two channels (ping -> pong). spin_ns = 1 makes
// every wait sleep on the futex; the default spins first (arg 1).
void BM_WaitWakeRoundTrip(benchmark::State &st)
{
    uint32_t spin = st.range(0) ? 0 : 1;
    Channel ping(64, 4, false), pong(64, 4, false);
    ndshm_reader *rping, *rpong;
    ndshm_options ro = NDSHM_OPTIONS_INIT;
    ro.spin_ns = spin;
    check(ndshm_reader_open(ping.name.c_str(), &ro, &rping), "reader_open");
    check(ndshm_reader_open(pong.name.c_str(), &ro, &rpong), "reader_open");
    std::atomic<bool> stop{false};
    uint64_t shape[1] = {8};
    std::thread echo([&] {
        unsigned char buf[8];
        ndshm_info info;
        while (!stop.load(std::memory_order_relaxed)) {
            if (ndshm_wait(rping, 20000000) != NDSHM_OK)
                continue;
            if (ndshm_read_latest(rping, buf, sizeof buf, &info) == NDSHM_OK)
                ndshm_publish(pong.w, NDSHM_UINT8, 1, shape, buf, nullptr);
        }
    });
    unsigned char buf[8] = {0};
    ndshm_info info;
    for (auto _ : st) {
        check(ndshm_publish(ping.w, NDSHM_UINT8, 1, shape, buf, nullptr), "publish");
        while (ndshm_wait(rpong, 1000000000) != NDSHM_OK) {
        }
        check(ndshm_read_latest(rpong, buf, sizeof buf, &info), "read");
    }
    stop = true;
    echo.join();
    ndshm_reader_close(rping);
    ndshm_reader_close(rpong);
}
BENCHMARK(BM_WaitWakeRoundTrip)->Arg(0)->Arg(1)->UseRealTime();

// The cost of a re-allocation: every publish alternates between two sizes that do not fit
// the other's slot capacity (reserve shrinks it back), so each one creates a new segment.
void BM_Realloc(benchmark::State &st)
{
    uint64_t n = (uint64_t)st.range(0);
    Channel c(64, 4, true);
    std::vector<unsigned char> src(n, 3);
    uint64_t big[1] = {n}, small[1] = {64};
    for (auto _ : st) {
        check(ndshm_publish(c.w, NDSHM_UINT8, 1, big, src.data(), nullptr), "publish big");
        check(ndshm_writer_reserve(c.w, 64), "reserve");
        check(ndshm_publish(c.w, NDSHM_UINT8, 1, small, src.data(), nullptr), "publish small");
    }
    st.counters["reallocs/iter"] = 2;
}
BENCHMARK(BM_Realloc)->Arg(65536)->Arg(1048576)->Arg(6220800);

} // namespace

BENCHMARK_MAIN();
