// Threads that each keep their own vector registers across thread switches:
// every thread loads a pattern of its own into ymm0-15 (and zmm0-31 and
// k1-7 where the CPU has AVX-512), yields many times with the registers
// live, and checks nothing changed. Then AMX: arch_prctl must either grant
// tile data, after which tile registers survive switches too, or refuse
// with EOPNOTSUPP where the CPU (as CPUID tells it) has no AMX.
//
// Prints which register sets were checked: `avx avx512 amx`, as the CPU
// offers them, so a run can be compared with a native one on the same CPU.
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 200
#define ARCH_GET_XCOMP_SUPP 0x1021
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int has_avx, has_avx512, has_amx;

static uint64_t xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static void detect(void) {
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave) return;
    uint64_t enabled = xcr0();
    has_avx = avx && (enabled & 0x6) == 0x6;
    __cpuid_count(7, 0, a, b, c, d);
    has_avx512 = has_avx && ((b >> 16) & 1) && (enabled & 0xe0) == 0xe0;
    has_amx = ((d >> 24) & 1) && (enabled & 0x60000) == 0x60000; // AMX-TILE
}

// One syscall with the registers live: the switch happens inside it.
#define YIELD "mov $24, %%eax\n\tsyscall\n\t"
#define SYSCALL_CLOBBERS "rax", "rcx", "r11", "memory"
#define XMM0_15                                                                              \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

static int ymm_round(const uint8_t in[16 * 32], uint8_t out[16 * 32]) {
    __asm__ volatile(
        "vmovdqu 0(%0), %%ymm0\n\t vmovdqu 32(%0), %%ymm1\n\t"
        "vmovdqu 64(%0), %%ymm2\n\t vmovdqu 96(%0), %%ymm3\n\t"
        "vmovdqu 128(%0), %%ymm4\n\t vmovdqu 160(%0), %%ymm5\n\t"
        "vmovdqu 192(%0), %%ymm6\n\t vmovdqu 224(%0), %%ymm7\n\t"
        "vmovdqu 256(%0), %%ymm8\n\t vmovdqu 288(%0), %%ymm9\n\t"
        "vmovdqu 320(%0), %%ymm10\n\t vmovdqu 352(%0), %%ymm11\n\t"
        "vmovdqu 384(%0), %%ymm12\n\t vmovdqu 416(%0), %%ymm13\n\t"
        "vmovdqu 448(%0), %%ymm14\n\t vmovdqu 480(%0), %%ymm15\n\t"
        YIELD
        "vmovdqu %%ymm0, 0(%1)\n\t vmovdqu %%ymm1, 32(%1)\n\t"
        "vmovdqu %%ymm2, 64(%1)\n\t vmovdqu %%ymm3, 96(%1)\n\t"
        "vmovdqu %%ymm4, 128(%1)\n\t vmovdqu %%ymm5, 160(%1)\n\t"
        "vmovdqu %%ymm6, 192(%1)\n\t vmovdqu %%ymm7, 224(%1)\n\t"
        "vmovdqu %%ymm8, 256(%1)\n\t vmovdqu %%ymm9, 288(%1)\n\t"
        "vmovdqu %%ymm10, 320(%1)\n\t vmovdqu %%ymm11, 352(%1)\n\t"
        "vmovdqu %%ymm12, 384(%1)\n\t vmovdqu %%ymm13, 416(%1)\n\t"
        "vmovdqu %%ymm14, 448(%1)\n\t vmovdqu %%ymm15, 480(%1)\n\t"
        "vzeroupper\n\t"
        :
        : "r"(in), "r"(out)
        : SYSCALL_CLOBBERS, XMM0_15);
    return memcmp(in, out, 16 * 32);
}

// zmm16-31 (the Hi16_ZMM component), the upper halves of zmm0-15 (ZMM_Hi256)
// and the opmask registers: the three AVX-512 components.
__attribute__((target("avx512f"))) static int zmm_round(const uint8_t in[32 * 64 + 8 * 8],
                                                        uint8_t out[32 * 64 + 8 * 8]) {
    __asm__ volatile(
#define LOAD(n) "vmovdqu64 " #n "*64(%0), %%zmm" #n "\n\t"
#define STORE(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%1)\n\t"
        LOAD(0) LOAD(1) LOAD(2) LOAD(3) LOAD(4) LOAD(5) LOAD(6) LOAD(7) LOAD(8) LOAD(9)
        LOAD(10) LOAD(11) LOAD(12) LOAD(13) LOAD(14) LOAD(15) LOAD(16) LOAD(17) LOAD(18)
        LOAD(19) LOAD(20) LOAD(21) LOAD(22) LOAD(23) LOAD(24) LOAD(25) LOAD(26) LOAD(27)
        LOAD(28) LOAD(29) LOAD(30) LOAD(31)
        "kmovq 2048+8(%0), %%k1\n\t kmovq 2048+16(%0), %%k2\n\t kmovq 2048+24(%0), %%k3\n\t"
        "kmovq 2048+32(%0), %%k4\n\t kmovq 2048+40(%0), %%k5\n\t kmovq 2048+48(%0), %%k6\n\t"
        "kmovq 2048+56(%0), %%k7\n\t"
        YIELD
        STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7) STORE(8)
        STORE(9) STORE(10) STORE(11) STORE(12) STORE(13) STORE(14) STORE(15) STORE(16)
        STORE(17) STORE(18) STORE(19) STORE(20) STORE(21) STORE(22) STORE(23) STORE(24)
        STORE(25) STORE(26) STORE(27) STORE(28) STORE(29) STORE(30) STORE(31)
        "kmovq %%k1, 2048+8(%1)\n\t kmovq %%k2, 2048+16(%1)\n\t kmovq %%k3, 2048+24(%1)\n\t"
        "kmovq %%k4, 2048+32(%1)\n\t kmovq %%k5, 2048+40(%1)\n\t kmovq %%k6, 2048+48(%1)\n\t"
        "kmovq %%k7, 2048+56(%1)\n\t"
        "vzeroupper\n\t"
        :
        : "r"(in), "r"(out)
        : SYSCALL_CLOBBERS, XMM0_15, "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
          "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k1", "k2",
          "k3", "k4", "k5", "k6", "k7");
    return memcmp(in + 0, out + 0, 32 * 64) || memcmp(in + 2048 + 8, out + 2048 + 8, 56);
}

// Tile config: palette 1, tiles 0-7 with 16 rows of 64 bytes.
struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

// Tiles 0-7 loaded from `in` (8 x 1 KiB), a yield, then stored to `out`.
static int tile_round(const struct tile_config *config, const uint8_t *in, uint8_t *out) {
    __asm__ volatile(
        "ldtilecfg (%0)\n\t"
        "mov $64, %%rdx\n\t"
#define TLOAD(n) "lea " #n "*1024(%1), %%r8\n\t tileloadd (%%r8,%%rdx,1), %%tmm" #n "\n\t"
#define TSTORE(n) "lea " #n "*1024(%2), %%r8\n\t tilestored %%tmm" #n ", (%%r8,%%rdx,1)\n\t"
        TLOAD(0) TLOAD(1) TLOAD(2) TLOAD(3) TLOAD(4) TLOAD(5) TLOAD(6) TLOAD(7)
        YIELD
        "mov $64, %%rdx\n\t"
        TSTORE(0) TSTORE(1) TSTORE(2) TSTORE(3) TSTORE(4) TSTORE(5) TSTORE(6) TSTORE(7)
        "tilerelease\n\t"
        :
        : "r"(config), "r"(in), "r"(out)
        : "rax", "rcx", "rdx", "r8", "r11", "memory");
    return memcmp(in, out, 8 * 1024);
}

static int failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what, long thread, int round) {
    pthread_mutex_lock(&lock);
    fprintf(stderr, "thread %ld: %s changed across a switch in round %d\n", thread, what, round);
    failures++;
    pthread_mutex_unlock(&lock);
}

static void fill(uint8_t *buffer, size_t len, long thread, int round) {
    for (size_t i = 0; i < len; i++) buffer[i] = (uint8_t)(thread * 67 + round * 13 + i * 7 + 1);
}

static void *vectors(void *arg) {
    long thread = (long)arg;
    static __thread uint8_t in[32 * 64 + 64] __attribute__((aligned(64)));
    static __thread uint8_t out[32 * 64 + 64] __attribute__((aligned(64)));
    for (int round = 0; round < ROUNDS; round++) {
        fill(in, sizeof in, thread, round);
        if (has_avx && ymm_round(in, out)) fail("ymm", thread, round);
        if (has_avx512 && zmm_round(in, out)) fail("zmm/k", thread, round);
    }
    return NULL;
}

static void *tiles(void *arg) {
    long thread = (long)arg;
    struct tile_config config = {.palette = 1};
    for (int t = 0; t < 8; t++) {
        config.colsb[t] = 64;
        config.rows[t] = 16;
    }
    static __thread uint8_t in[8 * 1024], out[8 * 1024];
    for (int round = 0; round < ROUNDS / 4; round++) {
        fill(in, sizeof in, thread, round);
        if (tile_round(&config, in, out)) fail("tmm", thread, round);
    }
    return NULL;
}

static void run_threads(void *(*body)(void *)) {
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, body, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
}

int main(void) {
    detect();
    run_threads(vectors);

    uint64_t supported = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_SUPP, &supported) != 0) {
        printf("ARCH_GET_XCOMP_SUPP failed: %s\n", strerror(errno));
        return 1;
    }
    int granted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    int refusal = granted ? 0 : errno;
    if (has_amx != granted || has_amx != !!(supported & (1 << XFEATURE_XTILEDATA))) {
        printf("AMX: CPUID says %d, ARCH_GET_XCOMP_SUPP %#llx, ARCH_REQ_XCOMP_PERM %s\n", has_amx,
               (unsigned long long)supported, granted ? "granted" : strerror(refusal));
        return 1;
    }
    if (!granted && refusal != EOPNOTSUPP) {
        printf("ARCH_REQ_XCOMP_PERM without AMX failed with %s, not EOPNOTSUPP\n",
               strerror(refusal));
        return 1;
    }
    if (granted) run_threads(tiles);

    printf("kept across switches by %d threads:%s%s%s\n", THREADS, has_avx ? " avx" : "",
           has_avx512 ? " avx512" : "", granted ? " amx" : "");
    return failures != 0;
}
