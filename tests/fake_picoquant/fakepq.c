/*
 * A fake PicoQuant TTTR library for spad's driver tests: the functions of hhlib (HydraHarp
 * 400, v3.0), mhlib (MultiHarp 150/160, v3.x) or phlib (PicoHarp 300, v3.0) that spad's driver
 * calls, compiled with -DFAM_HH, -DFAM_MH or -DFAM_PH and -I to the family's folder of
 * PicoQuant's published headers (vendor/): each function is defined against the vendor's own
 * declaration (hhlib.h, mhlib.h, phlib.h), so one that differs does not compile, and the
 * limits, flags and error codes are the vendor's (*defin.h, errorcodes.h).
 *
 * It streams record words loaded from a file (written by the tests from spad's photon
 * simulator), checks the order of calls the way the hardware library does (nothing before
 * Initialize, no settings while measuring), returns the vendor error codes of errorcodes.h,
 * and raises on request: FIFO full, sync lost, reference lost, system error, counts dropped,
 * and a device that stops answering (USB bulk read failure, as when it is unplugged).
 *
 * Test controls (not in the vendor library): PQFAKE_Load, PQFAKE_SetDevice, PQFAKE_Inject,
 * PQFAKE_SetWordsPerRead, PQFAKE_GetCallLog, PQFAKE_Reset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(FAM_HH)
#include "hhdefin.h"
#include "hhlib.h"
#include "errorcodes.h"
#define P(n) HH_##n
#define E(n) HH_ERROR_##n
#define MODEL "HydraHarp 400"
#elif defined(FAM_MH)
#include "mhdefin.h"
#include "mhlib.h"
#include "errorcodes.h"
#define P(n) MH_##n
#define E(n) MH_ERROR_##n
#define MODEL "MultiHarp 150 4P"
#elif defined(FAM_PH)
#include "phdefin.h"
#include "phlib.h"
#include "errorcodes.h"
#define P(n) PH_##n
#define E(n) ERROR_##n
#define MODEL "PicoHarp 300"
#else
#error "compile with -DFAM_HH, -DFAM_MH or -DFAM_PH"
#endif

/* the test controls (declared here: every other exported function is the vendor's) */
int PQFAKE_Load(const char *path);
void PQFAKE_SetDevice(const char *ser, int nchan, double base_ps, int syncrate,
                      const int *rates);
void PQFAKE_Inject(int kind, int after_reads);
void PQFAKE_SetWordsPerRead(int n);
int PQFAKE_GetCallLog(char *buf, int len);
void PQFAKE_Reset(void);

enum { FAULT_NONE, FAULT_FIFOFULL, FAULT_SYNC_LOST, FAULT_UNPLUGGED, FAULT_SYSERROR,
       FAULT_NO_DEVICE, FAULT_CNTS_DROPPED, FAULT_REF_LOST };

static unsigned int *words = NULL;
static long n_words = 0, pos = 0;
static char serial[16] = "1021234";
static int n_channels = 2, sync_rate = 20000000, count_rates[8] = {30000, 29000};
static double base_res_ps = 1.0;
static int words_per_read = 65536;
static int fault = FAULT_NONE, fault_after = 0, reads = 0;
static int opened = 0, initialised = 0, mode = 0, running = 0, binning = 0, divider = 1;
static double t_start = 0, t_acq_s = 0;
static char calls[65536];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void logcall(const char *name) {
    if (strlen(calls) + strlen(name) + 2 < sizeof calls) {
        strcat(calls, name);
        strcat(calls, " ");
    }
}

static int unplugged(void) { return fault == FAULT_UNPLUGGED && reads >= fault_after; }

#define CHECK_DEV(d) do { if ((d) != 0 || !opened) return E(DEVICE_NOT_OPEN); \
                          if (unplugged()) return E(USB_BULKRD_FAIL); } while (0)
#define CHECK_INIT(d) do { CHECK_DEV(d); if (!initialised) return E(NOT_INITIALIZED); } while (0)
#define CHECK_IDLE(d) do { CHECK_INIT(d); if (running) return E(INSTANCE_RUNNING); } while (0)

/* ---- test controls ---------------------------------------------------------------------- */

int PQFAKE_Load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    free(words);
    words = malloc(size > 0 ? size : 4);
    n_words = fread(words, 4, size / 4, f);
    fclose(f);
    pos = 0;
    return (int)n_words;
}

void PQFAKE_SetDevice(const char *ser, int nchan, double base_ps, int syncrate,
                      const int *rates) {
    snprintf(serial, sizeof serial, "%s", ser);
    n_channels = nchan;
    base_res_ps = base_ps;
    sync_rate = syncrate;
    for (int i = 0; i < nchan && i < 8; i++) count_rates[i] = rates[i];
}

void PQFAKE_Inject(int kind, int after_reads) { fault = kind; fault_after = after_reads; }
void PQFAKE_SetWordsPerRead(int n) { words_per_read = n; }
int PQFAKE_GetCallLog(char *buf, int len) { snprintf(buf, len, "%s", calls); return 0; }
void PQFAKE_Reset(void) {
    fault = FAULT_NONE; reads = 0; pos = 0; calls[0] = 0;
    opened = initialised = running = 0;
}

/* ---- the vendor API --------------------------------------------------------------------- */

int P(GetLibraryVersion)(char *vers) { logcall("GetLibraryVersion"); strcpy(vers, "3.0"); return 0; }

int P(GetErrorString)(char *errstring, int errcode) {
    const char *s = "ERROR_UNKNOWN";
    switch (errcode) {
    case 0: s = "ERROR_NONE"; break;
    case E(DEVICE_OPEN_FAIL): s = "ERROR_DEVICE_OPEN_FAIL"; break;
    case E(DEVICE_NOT_OPEN): s = "ERROR_DEVICE_NOT_OPEN"; break;
    case E(INSTANCE_RUNNING): s = "ERROR_INSTANCE_RUNNING"; break;
    case E(INVALID_ARGUMENT): s = "ERROR_INVALID_ARGUMENT"; break;
    case E(INVALID_MODE): s = "ERROR_INVALID_MODE"; break;
    case E(NOT_INITIALIZED): s = "ERROR_NOT_INITIALIZED"; break;
    case E(USB_BULKRD_FAIL): s = "ERROR_USB_BULKRD_FAIL"; break;
    }
    strcpy(errstring, s);   /* the vendor demos pass a 40-byte buffer */
    return 0;
}

int P(OpenDevice)(int devidx, char *ser) {
    logcall("OpenDevice");
    if (devidx != 0 || fault == FAULT_NO_DEVICE) return E(DEVICE_OPEN_FAIL);
    strcpy(ser, serial);
    opened = 1;
    return 0;
}

int P(CloseDevice)(int devidx) {
    if (devidx == 0 && opened) logcall("CloseDevice");
    if (devidx == 0) { opened = initialised = running = 0; }
    return 0;
}

#if defined(FAM_PH)
int P(Initialize)(int devidx, int m) {
#else
int P(Initialize)(int devidx, int m, int refsource) {
    if (refsource < 0 || refsource > 1) return E(INVALID_ARGUMENT);
#endif
    logcall("Initialize");
    CHECK_DEV(devidx);
    if (m != 2 && m != 3) return E(INVALID_MODE);
    mode = m; initialised = 1; running = 0; binning = 0; divider = 1;
    return 0;
}

int P(GetHardwareInfo)(int devidx, char *model, char *partno, char *version) {
    logcall("GetHardwareInfo");
    CHECK_INIT(devidx);
    strcpy(model, MODEL); strcpy(partno, "930000"); strcpy(version, "2.0");
    return 0;
}

int P(GetSerialNumber)(int devidx, char *ser) { CHECK_INIT(devidx); strcpy(ser, serial); return 0; }

int P(GetBaseResolution)(int devidx, double *resolution, int *binsteps) {
    logcall("GetBaseResolution");
    CHECK_INIT(devidx);
    *resolution = base_res_ps; *binsteps = 24;
    return 0;
}

#if !defined(FAM_PH)
int P(GetNumOfInputChannels)(int devidx, int *nchannels) {
    logcall("GetNumOfInputChannels");
    CHECK_INIT(devidx); *nchannels = n_channels; return 0;
}
int P(SetSyncChannelOffset)(int devidx, int value) {
    logcall("SetSyncChannelOffset");
    CHECK_IDLE(devidx);
    return (value < CHANOFFSMIN || value > CHANOFFSMAX) ? E(INVALID_ARGUMENT) : 0;
}
int P(SetInputChannelOffset)(int devidx, int channel, int value) {
    logcall("SetInputChannelOffset");
    CHECK_IDLE(devidx);
    if (channel < 0 || channel >= n_channels || value < CHANOFFSMIN || value > CHANOFFSMAX)
        return E(INVALID_ARGUMENT);
    return 0;
}
int P(GetSyncRate)(int devidx, int *syncrate) {
    logcall("GetSyncRate");
    CHECK_INIT(devidx); *syncrate = sync_rate; return 0;
}
#endif

#if defined(FAM_HH) || defined(FAM_PH)
int P(Calibrate)(int devidx) { logcall("Calibrate"); CHECK_IDLE(devidx); return 0; }
#endif

#if defined(FAM_HH)
int P(SetSyncCFD)(int devidx, int level, int zc) {
    logcall("SetSyncCFD");
    CHECK_IDLE(devidx);
    return (level < DISCRMIN || level > DISCRMAX || zc < ZCMIN || zc > ZCMAX) ? E(INVALID_ARGUMENT) : 0;
}
#endif
#if defined(FAM_HH) || defined(FAM_PH)
int P(SetInputCFD)(int devidx, int channel, int level, int zc) {
    logcall("SetInputCFD");
    CHECK_IDLE(devidx);
#if defined(FAM_PH)
    if (channel < 0 || channel > 1) return E(INVALID_ARGUMENT);   /* 0 = sync input */
#else
    if (channel < 0 || channel >= n_channels) return E(INVALID_ARGUMENT);
#endif
    return (level < DISCRMIN || level > DISCRMAX || zc < ZCMIN || zc > ZCMAX) ? E(INVALID_ARGUMENT) : 0;
}
#endif
#if defined(FAM_MH)
int P(SetSyncEdgeTrg)(int devidx, int level, int edge) {
    logcall("SetSyncEdgeTrg");
    CHECK_IDLE(devidx);
    return (level < TRGLVLMIN || level > TRGLVLMAX || edge < EDGE_FALLING || edge > EDGE_RISING) ? E(INVALID_ARGUMENT) : 0;
}
int P(SetInputEdgeTrg)(int devidx, int channel, int level, int edge) {
    logcall("SetInputEdgeTrg");
    CHECK_IDLE(devidx);
    if (channel < 0 || channel >= n_channels) return E(INVALID_ARGUMENT);
    return (level < TRGLVLMIN || level > TRGLVLMAX || edge < EDGE_FALLING || edge > EDGE_RISING) ? E(INVALID_ARGUMENT) : 0;
}
#endif
#if defined(FAM_PH)
int P(SetSyncOffset)(int devidx, int offset) {
    logcall("SetSyncOffset");
    CHECK_IDLE(devidx);
    return (offset < SYNCOFFSMIN || offset > SYNCOFFSMAX) ? E(INVALID_ARGUMENT) : 0;
}
#endif

int P(SetSyncDiv)(int devidx, int div) {
    logcall("SetSyncDiv");
    CHECK_IDLE(devidx);
    if (div < SYNCDIVMIN || div > SYNCDIVMAX) return E(INVALID_ARGUMENT);
    divider = div; return 0;
}
int P(SetBinning)(int devidx, int b) {
    logcall("SetBinning");
    CHECK_IDLE(devidx);
    if (b < 0 || b > 24) return E(INVALID_ARGUMENT);
    binning = b; return 0;
}
int P(SetOffset)(int devidx, int offset) { logcall("SetOffset"); CHECK_IDLE(devidx); return offset < 0 ? E(INVALID_ARGUMENT) : 0; }
int P(GetResolution)(int devidx, double *resolution) {
    logcall("GetResolution");
    CHECK_INIT(devidx);
    *resolution = mode == 3 ? base_res_ps * (1 << binning) : base_res_ps;
    return 0;
}
int P(GetCountRate)(int devidx, int channel, int *rate) {
    logcall("GetCountRate");
    CHECK_INIT(devidx);
#if defined(FAM_PH)
    if (channel < 0 || channel > 1) return E(INVALID_ARGUMENT);
    *rate = channel == 0 ? sync_rate : count_rates[0];
#else
    if (channel < 0 || channel >= n_channels) return E(INVALID_ARGUMENT);
    *rate = count_rates[channel];
#endif
    return 0;
}
int P(GetWarnings)(int devidx, int *warnings) { logcall("GetWarnings"); CHECK_INIT(devidx); *warnings = 0; return 0; }
int P(GetWarningsText)(int devidx, char *text, int warnings) { CHECK_INIT(devidx); text[0] = 0; return 0; }

int P(StartMeas)(int devidx, int tacq) {
    logcall("StartMeas");
    CHECK_IDLE(devidx);
    if (tacq < ACQTMIN || tacq > ACQTMAX) return E(INVALID_ARGUMENT);
    running = 1; t_start = now(); t_acq_s = tacq * 1e-3; pos = 0; reads = 0;
    return 0;
}
int P(StopMeas)(int devidx) { logcall("StopMeas"); CHECK_INIT(devidx); running = 0; return 0; }
int P(CTCStatus)(int devidx, int *ctcstatus) {
    CHECK_INIT(devidx);
    /* Done when the acquisition time has passed, or (a convenience of the fake) when the
       loaded records, if any, have all been handed out. */
    *ctcstatus = (now() - t_start >= t_acq_s) || (n_words > 0 && pos >= n_words);
    return 0;
}
int P(GetFlags)(int devidx, int *flags) {
    CHECK_INIT(devidx);
    *flags = 0;
#if defined(FLAG_ACTIVE)               /* phdefin.h has no "active" flag */
    if (running) *flags |= FLAG_ACTIVE;
#endif
    if (reads >= fault_after) {
        switch (fault) {
        case FAULT_FIFOFULL: *flags |= FLAG_FIFOFULL; break;
        case FAULT_SYSERROR: *flags |= FLAG_SYSERROR; break;
#if defined(FLAG_SYNC_LOST)            /* HydraHarp and MultiHarp only */
        case FAULT_SYNC_LOST: *flags |= FLAG_SYNC_LOST; break;
        case FAULT_REF_LOST: *flags |= FLAG_REF_LOST; break;
#endif
#if defined(FLAG_CNTS_DROPPED)         /* MultiHarp only */
        case FAULT_CNTS_DROPPED: *flags |= FLAG_CNTS_DROPPED; break;
#endif
        }
    }
    return 0;
}

#if defined(FAM_MH)
int P(ReadFiFo)(int devidx, unsigned int *buffer, int *nactual) {
    int count = TTREADMAX;     /* MHLib: the buffer must hold TTREADMAX words */
#else
int P(ReadFiFo)(int devidx, unsigned int *buffer, int count, int *nactual) {
    if (count < 128 || count > TTREADMAX || count % 128) return E(INVALID_ARGUMENT);
#endif
    CHECK_INIT(devidx);
    reads++;
    long n = n_words - pos;
    if (!running) n = 0;
    if (n > count) n = count;
    if (n > words_per_read) n = words_per_read;
    if (n > 0) memcpy(buffer, words + pos, n * 4);
    pos += n;
    *nactual = (int)n;
    return 0;
}
