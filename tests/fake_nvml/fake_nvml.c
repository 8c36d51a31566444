/* A stand-in for libnvidia-ml.so.1 with the entry points of an old driver (R470): enough for
 * genscope's NvmlBackend to run end to end through nvml-wrapper on a machine without a GPU.
 * No nvmlDeviceGetMemoryInfo_v2 (the backend must fall back to v1), no serial, VBIOS, clocks or
 * fans (missing symbols must read as "not supported"), an encoder that answers NOT_SUPPORTED.
 * Built by tests/nvml.rs with the system C compiler. */
#include <stdio.h>

typedef int nvmlReturn_t;
typedef void *nvmlDevice_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_INVALID_ARG 2
#define NVML_ERROR_NOT_SUPPORTED 3

static int devices[1];
static unsigned int utilization_calls;

nvmlReturn_t nvmlInit_v2(void) { return NVML_SUCCESS; }
nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }
const char *nvmlErrorString(nvmlReturn_t r) { (void)r; return "fake NVML error"; }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) { *count = 1; return NVML_SUCCESS; }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (index >= 1) return NVML_ERROR_INVALID_ARG;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    snprintf(version, length, "470.82.01");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    (void)d;
    snprintf(uuid, length, "GPU-legacy-0000");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    (void)d;
    snprintf(name, length, "Legacy Tesla T4");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    (void)d;
    m->total = 16ULL << 30;
    m->used = 4ULL << 30;
    m->free = 12ULL << 30;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    (void)d;
    utilization_calls++;
    u->gpu = 37;
    u->memory = 12;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t d, unsigned int *u, unsigned int *period) {
    (void)d; (void)u; (void)period;
    return NVML_ERROR_NOT_SUPPORTED;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *milliwatts) {
    (void)d;
    *milliwatts = 70500;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *celsius) {
    (void)d; (void)sensor;
    *celsius = 48;
    return NVML_SUCCESS;
}
