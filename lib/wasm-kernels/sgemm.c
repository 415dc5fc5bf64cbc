/*
 * OpenBLAS's sgemm for TF.js's wasm backend, as a Node-API addon. TF.js's own wasm matMul runs
 * 128-bit SIMD without fused multiply-add; OpenBLAS uses the CPU's AVX2/AVX-512 FMA kernels, so
 * the same product is several times faster (lib/wasm-kernels/matmul.ts registers it and measures).
 *
 * The operands live in the wasm heap: JavaScript passes the heap's ArrayBuffer and byte offsets,
 * and the result is written into a tensor the wasm backend has already allocated. Every range is
 * checked against the heap before BLAS touches it, so a wrong offset is an exception, not a
 * corrupted heap.
 *
 * Built by scripts/native-setup.ts (cc -shared … -lopenblas); no Node or OpenBLAS headers beyond
 * node_api.h are needed: the few CBLAS and OpenBLAS declarations are below.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* CBLAS's enumerations have fixed values in every implementation. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "sgemm: Node-API call failed: " #call); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

/* A non-negative integer argument below 2^53, or an exception naming it. */
static int get_count(napi_env env, napi_value v, const char *name, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d != floor(d) || d > 9007199254740991.0) {
    char msg[160];
    snprintf(msg, sizeof msg, "sgemm: %s must be a non-negative integer", name);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

/* blocks × block_floats floats from offset, all inside the heap (checked without overflow). */
static int in_heap(napi_env env, const char *name, int64_t offset, int64_t blocks, int64_t block_floats, size_t heap_bytes) {
  const int64_t heap_floats = (int64_t)(heap_bytes / 4);
  const int fits = offset % 4 == 0 && offset / 4 <= heap_floats &&
                   (block_floats == 0 || blocks <= (heap_floats - offset / 4) / block_floats);
  if (!fits) {
    char msg[200];
    snprintf(msg, sizeof msg, "sgemm: %s (offset %lld, %lld × %lld floats) lies outside the heap (%zu bytes) or is misaligned",
             name, (long long)offset, (long long)blocks, (long long)block_floats, heap_bytes);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

/*
 * matMul(heap, aOffset, bOffset, cOffset, batch, aBatched, bBatched, m, n, k, transposeA, transposeB)
 * C[i] = op(A[i]) · op(B[i]) for i < batch, row-major; an operand that is not batched is shared
 * by every i. op(A) is m×k (A stored k×m when transposed), op(B) is k×n (B stored n×k when
 * transposed), C is m×n.
 */
static napi_value mat_mul(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 12) {
    napi_throw_type_error(env, NULL, "sgemm: matMul takes 12 arguments");
    return NULL;
  }
  bool is_buffer;
  CHECK(napi_is_arraybuffer(env, argv[0], &is_buffer));
  if (!is_buffer) {
    napi_throw_type_error(env, NULL, "sgemm: heap must be an ArrayBuffer");
    return NULL;
  }
  void *heap;
  size_t heap_bytes;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &heap, &heap_bytes));
  static const char *names[] = {"aOffset", "bOffset", "cOffset", "batch", "aBatched", "bBatched", "m", "n", "k", "transposeA", "transposeB"};
  int64_t v[11];
  for (int i = 0; i < 11; i++)
    if (!get_count(env, argv[i + 1], names[i], &v[i])) return NULL;
  const int64_t a_off = v[0], b_off = v[1], c_off = v[2], batch = v[3], m = v[6], n = v[7], k = v[8];
  const int a_batched = v[4] != 0, b_batched = v[5] != 0, trans_a = v[9] != 0, trans_b = v[10] != 0;
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) {
    napi_throw_range_error(env, NULL, "sgemm: a dimension exceeds 2^31 - 1");
    return NULL;
  }
  const int64_t a_size = m * k, b_size = k * n, c_size = m * n;
  if (!in_heap(env, "A", a_off, a_batched ? batch : 1, a_size, heap_bytes) ||
      !in_heap(env, "B", b_off, b_batched ? batch : 1, b_size, heap_bytes) ||
      !in_heap(env, "C", c_off, batch, c_size, heap_bytes))
    return NULL;
  char *base = (char *)heap;
  for (int64_t i = 0; i < batch; i++) {
    const float *a = (const float *)(base + a_off) + (a_batched ? i * a_size : 0);
    const float *b = (const float *)(base + b_off) + (b_batched ? i * b_size : 0);
    float *c = (float *)(base + c_off) + i * c_size;
    if (c_size == 0) continue;
    if (k == 0) {
      memset(c, 0, (size_t)c_size * sizeof(float));
      continue;
    }
    cblas_sgemm(CBLAS_ROW_MAJOR, trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS, trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, (int)m, (int)n,
                (int)k, 1.0f, a, trans_a ? (int)m : (int)k, b, trans_b ? (int)k : (int)n, 0.0f, c, (int)n);
  }
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK(napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  int64_t n;
  if (argc != 1 || !get_count(env, arg, "threads", &n)) return NULL;
  if (n < 1 || n > 1024) {
    napi_throw_range_error(env, NULL, "sgemm: threads must be between 1 and 1024");
    return NULL;
  }
  openblas_set_num_threads((int)n);
  return NULL;
}

static napi_value describe(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, config, core, threads;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &config));
  CHECK(napi_create_string_utf8(env, openblas_get_corename(), NAPI_AUTO_LENGTH, &core));
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &threads));
  CHECK(napi_set_named_property(env, obj, "config", config));
  CHECK(napi_set_named_property(env, obj, "core", core));
  CHECK(napi_set_named_property(env, obj, "threads", threads));
  return obj;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"matMul", NULL, mat_mul, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"describe", NULL, describe, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
