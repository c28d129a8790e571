/*
 * A fake Andor SDK2 library (atmcd64d) for spad's tests: the functions pylablib's
 * AndorSDK2Camera calls, with the C signatures pylablib declares for them
 * (pylablib/devices/Andor/atmcd32d_defs.py), so that pylablib's own class runs over it on
 * Linux and spad's driver is tested through pylablib's real code path.
 *
 * It plays one iXon 897-like camera: 512 x 512 pixels of 16 um, 16-bit, cooler with a finite
 * rate, EM gain, amplifier modes, and acquisitions whose frames become available one cycle
 * (exposure + 10 ms read-out) after another on the monotonic clock. Each frame row is a
 * background of 500 ADU plus a spectral line of 3000 ADU peak (Gaussian, sigma 10 pixels)
 * centred on column 256, scaled by exposure / 0.1 s.
 *
 * Nothing here restates pylablib: the build (tests/andor_fake.py) passes pylablib's values of
 * the SDK's return codes (DRV_SUCCESS, DRV_P1INVALID, ...) with -D, and writes the header
 * included below from pylablib's ctypes declarations of these functions, so a function whose
 * C signature differs from what pylablib calls does not compile.
 *
 * Test controls (not in the SDK): FAKEANDOR_Reset, FAKEANDOR_Unplug, FAKEANDOR_GetCallLog.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pylablib_sdk2.h"        /* written by the build from pylablib's declarations */

#define W 512
#define H 512
#define BUFFER_FRAMES 64
#define READOUT_S 0.01

int FAKEANDOR_Reset(void);
int FAKEANDOR_Unplug(int after_calls);
int FAKEANDOR_GetCallLog(char *buf, int len);


static int initialised = 0, unplug_after = -1, n_calls = 0;
static int cooler = 0, setpoint = 20, em_gain = 0, em_advanced = 0, read_mode = 4;
static int acq_mode = 1, n_kinetics = 1, running = 0, n_tracks = 1;
static float exposure = 0.1f, kinetic_cycle = 0.0f;
static double t_temp0 = 0, temp0 = 20.0, t_start = 0;
static long stopped_frames = -1;
static int image[6] = {1, 1, 1, W, 1, H};
static char calls[65536];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* every SDK function starts with this: log it, and fail as an unplugged camera would */
static int enter(const char *name) {
    if (strlen(calls) + strlen(name) + 2 < sizeof calls) {
        strcat(calls, name);
        strcat(calls, " ");
    }
    n_calls++;
    if (unplug_after >= 0 && n_calls > unplug_after) return DRV_ERROR_ACK;
    return DRV_SUCCESS;
}
#define ENTER(name) do { int e_ = enter(name); if (e_ != DRV_SUCCESS) return e_; } while (0)
#define ENTER_INIT(name) do { ENTER(name); if (!initialised) return DRV_NOT_INITIALIZED; } while (0)

int FAKEANDOR_Reset(void) {
    initialised = running = cooler = em_gain = em_advanced = 0;
    unplug_after = -1; n_calls = 0; calls[0] = 0; setpoint = 20; temp0 = 20.0;
    t_temp0 = now(); stopped_frames = -1;
    return 0;
}
int FAKEANDOR_Unplug(int after_calls) { unplug_after = n_calls + after_calls; return 0; }
int FAKEANDOR_GetCallLog(char *buf, int len) { snprintf(buf, len, "%s", calls); return 0; }

/* ---- connection and identity ------------------------------------------------------------- */

unsigned int GetAvailableCameras(long *total) { ENTER("GetAvailableCameras"); *total = 1; return DRV_SUCCESS; }
unsigned int GetCameraHandle(long index, long *handle) {
    ENTER("GetCameraHandle");
    if (index != 0) return DRV_P1INVALID;
    *handle = 100; return DRV_SUCCESS;
}
unsigned int GetCurrentCamera(long *handle) { ENTER("GetCurrentCamera"); *handle = 100; return DRV_SUCCESS; }
unsigned int SetCurrentCamera(long handle) { ENTER("SetCurrentCamera"); return handle == 100 ? DRV_SUCCESS : DRV_P1INVALID; }
unsigned int Initialize(char *dir) { ENTER("Initialize"); (void)dir; initialised = 1; t_temp0 = now(); return DRV_SUCCESS; }
unsigned int ShutDown(void) { ENTER("ShutDown"); initialised = 0; running = 0; return DRV_SUCCESS; }
unsigned int GetVersionInfo(int arr, char *info, unsigned long len) {
    ENTER("GetVersionInfo"); (void)arr; snprintf(info, len, "2.104.30000.0 (fake)"); return DRV_SUCCESS;
}
unsigned int GetCapabilities(AndorCapabilities *caps) {
    ENTER_INIT("GetCapabilities");
    caps->ulAcqModes = 1 | 2 | 4 | 8;                  /* single, video, accumulate, kinetic */
    caps->ulReadModes = 1 | 2 | 4 | 8 | 16 | 32;       /* image, sub-image, tracks, FVB */
    caps->ulTriggerModes = 1;                          /* internal */
    caps->ulCameraType = 1;                            /* iXon */
    caps->ulPixelMode = 2;                             /* 16 bit */
    caps->ulSetFunctions = 0x01 | 0x02 | 0x04 | 0x10 | 0x0200 | 0x8000;
    caps->ulGetFunctions = 0x01 | 0x02 | 0x04 | 0x08 | 0x20;
    caps->ulFeatures = 1 | 8;                          /* polling, shutter */
    caps->ulPCICard = 0; caps->ulEMGainCapability = 1 | 2; caps->ulFTReadModes = 0;
    caps->ulFeatures2 = 0;
    return DRV_SUCCESS;
}
unsigned int GetControllerCardModel(char *model) { ENTER_INIT("GetControllerCardModel"); strcpy(model, "USB"); return DRV_SUCCESS; }
unsigned int GetHeadModel(char *name) { ENTER_INIT("GetHeadModel"); strcpy(name, "DU897_BV"); return DRV_SUCCESS; }
unsigned int GetCameraSerialNumber(int *number) { ENTER_INIT("GetCameraSerialNumber"); *number = 9876; return DRV_SUCCESS; }
unsigned int GetDetector(int *x, int *y) { ENTER_INIT("GetDetector"); *x = W; *y = H; return DRV_SUCCESS; }
unsigned int GetPixelSize(float *x, float *y) { ENTER_INIT("GetPixelSize"); *x = 16.0f; *y = 16.0f; return DRV_SUCCESS; }

/* ---- cooling: 200 C/s towards the set point (fast, for the tests), stabilised 0.2 s after */

static double temperature(double *reached_at) {
    double target = cooler ? setpoint : 20.0, dt = now() - t_temp0, span = fabs(target - temp0);
    *reached_at = t_temp0 + span / 200.0;
    if (dt * 200.0 >= span) return target;
    return temp0 + (target > temp0 ? 1 : -1) * dt * 200.0;
}
static void restart_cooling(void) { double r; temp0 = temperature(&r); t_temp0 = now(); }
unsigned int GetTemperatureRange(int *mintemp, int *maxtemp) { ENTER_INIT("GetTemperatureRange"); *mintemp = -100; *maxtemp = 20; return DRV_SUCCESS; }
unsigned int SetTemperature(int t) {
    ENTER_INIT("SetTemperature");
    if (t < -100 || t > 20) return DRV_P1INVALID;
    restart_cooling(); setpoint = t; return DRV_SUCCESS;
}
unsigned int CoolerON(void) { ENTER_INIT("CoolerON"); restart_cooling(); cooler = 1; return DRV_SUCCESS; }
unsigned int CoolerOFF(void) { ENTER_INIT("CoolerOFF"); restart_cooling(); cooler = 0; return DRV_SUCCESS; }
unsigned int IsCoolerOn(int *status) { ENTER_INIT("IsCoolerOn"); *status = cooler; return DRV_SUCCESS; }
unsigned int GetTemperatureF(float *t) {
    double reached_at, temp;
    ENTER_INIT("GetTemperatureF");
    temp = temperature(&reached_at);
    *t = (float)temp;
    if (!cooler) return DRV_TEMPERATURE_OFF;
    if (fabs(temp - setpoint) > 1.0) return DRV_TEMPERATURE_NOT_REACHED;
    if (now() < reached_at + 0.2) return DRV_TEMPERATURE_NOT_STABILIZED;
    return DRV_TEMPERATURE_STABILIZED;
}
unsigned int SetFanMode(int mode) { ENTER_INIT("SetFanMode"); return (mode < 0 || mode > 2) ? DRV_P1INVALID : DRV_SUCCESS; }

/* ---- amplifiers: one 16-bit channel, EM and conventional outputs, 4 speeds, 3 pre-amps --- */

static const float hs_speeds[2][4] = {{17.0f, 10.0f, 5.0f, 1.0f}, {3.0f, 1.0f, 0.08f, 0.08f}};
static const float preamps[3] = {1.0f, 2.4f, 5.1f};
unsigned int GetNumberADChannels(int *channels) { ENTER_INIT("GetNumberADChannels"); *channels = 1; return DRV_SUCCESS; }
unsigned int GetNumberAmp(int *amp) { ENTER_INIT("GetNumberAmp"); *amp = 2; return DRV_SUCCESS; }
unsigned int GetBitDepth(int channel, int *depth) { ENTER_INIT("GetBitDepth"); if (channel != 0) return DRV_P1INVALID; *depth = 16; return DRV_SUCCESS; }
unsigned int GetAmpDesc(int index, char *name, int length) {
    ENTER_INIT("GetAmpDesc");
    if (index < 0 || index > 1) return DRV_P1INVALID;
    snprintf(name, length, "%s", index == 0 ? "Electron Multiplying" : "Conventional");
    return DRV_SUCCESS;
}
unsigned int GetNumberHSSpeeds(int channel, int typ, int *speeds) {
    ENTER_INIT("GetNumberHSSpeeds");
    if (channel != 0) return DRV_P1INVALID;
    if (typ < 0 || typ > 1) return DRV_P2INVALID;
    *speeds = typ == 0 ? 4 : 3; return DRV_SUCCESS;
}
unsigned int GetHSSpeed(int channel, int typ, int index, float *speed) {
    ENTER_INIT("GetHSSpeed");
    if (channel != 0) return DRV_P1INVALID;
    if (typ < 0 || typ > 1) return DRV_P2INVALID;
    if (index < 0 || index >= (typ == 0 ? 4 : 3)) return DRV_P3INVALID;
    *speed = hs_speeds[typ][index]; return DRV_SUCCESS;
}
unsigned int GetNumberPreAmpGains(int *n) { ENTER_INIT("GetNumberPreAmpGains"); *n = 3; return DRV_SUCCESS; }
unsigned int GetPreAmpGain(int index, float *gain) {
    ENTER_INIT("GetPreAmpGain");
    if (index < 0 || index > 2) return DRV_P1INVALID;
    *gain = preamps[index]; return DRV_SUCCESS;
}
unsigned int IsPreAmpGainAvailable(int channel, int amplifier, int index, int pa, int *status) {
    ENTER_INIT("IsPreAmpGainAvailable");
    (void)channel; (void)amplifier; (void)index;
    *status = pa >= 0 && pa <= 2; return DRV_SUCCESS;
}
unsigned int SetADChannel(int channel) { ENTER_INIT("SetADChannel"); return channel == 0 ? DRV_SUCCESS : DRV_P1INVALID; }
unsigned int SetOutputAmplifier(int typ) { ENTER_INIT("SetOutputAmplifier"); return (typ < 0 || typ > 1) ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int SetHSSpeed(int typ, int index) {
    ENTER_INIT("SetHSSpeed");
    if (typ < 0 || typ > 1) return DRV_P1INVALID;
    return (index < 0 || index >= (typ == 0 ? 4 : 3)) ? DRV_P2INVALID : DRV_SUCCESS;
}
unsigned int SetPreAmpGain(int index) { ENTER_INIT("SetPreAmpGain"); return (index < 0 || index > 2) ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int GetNumberVSSpeeds(int *speeds) { ENTER_INIT("GetNumberVSSpeeds"); *speeds = 2; return DRV_SUCCESS; }
unsigned int GetVSSpeed(int index, float *speed) {
    ENTER_INIT("GetVSSpeed");
    if (index < 0 || index > 1) return DRV_P1INVALID;
    *speed = index == 0 ? 0.3f : 0.5f; return DRV_SUCCESS;
}
unsigned int GetFastestRecommendedVSSpeed(int *index, float *speed) { ENTER_INIT("GetFastestRecommendedVSSpeed"); *index = 1; *speed = 0.5f; return DRV_SUCCESS; }
unsigned int SetVSSpeed(int index) { ENTER_INIT("SetVSSpeed"); return (index < 0 || index > 1) ? DRV_P1INVALID : DRV_SUCCESS; }

/* EM gain: 0-300, or up to 1000 in advanced mode (SDK2 manual, SetEMAdvanced) */
unsigned int GetEMGainRange(int *low, int *high) { ENTER_INIT("GetEMGainRange"); *low = 0; *high = em_advanced ? 1000 : 300; return DRV_SUCCESS; }
unsigned int SetEMGainMode(int mode) { ENTER_INIT("SetEMGainMode"); return (mode < 0 || mode > 3) ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int SetEMAdvanced(int state) { ENTER_INIT("SetEMAdvanced"); em_advanced = state != 0; return DRV_SUCCESS; }
unsigned int GetEMAdvanced(int *state) { ENTER_INIT("GetEMAdvanced"); *state = em_advanced; return DRV_SUCCESS; }
unsigned int SetEMCCDGain(int gain) {
    ENTER_INIT("SetEMCCDGain");
    if (gain < 0 || gain > (em_advanced ? 1000 : 300)) return DRV_P1INVALID;
    em_gain = gain; return DRV_SUCCESS;
}
unsigned int GetEMCCDGain(int *gain) { ENTER_INIT("GetEMCCDGain"); *gain = em_gain; return DRV_SUCCESS; }

/* ---- shutter, trigger -------------------------------------------------------------------- */

unsigned int SetShutter(int typ, int mode, int closingtime, int openingtime) {
    ENTER_INIT("SetShutter"); (void)typ; (void)closingtime; (void)openingtime;
    return (mode < 0 || mode > 2) ? DRV_P2INVALID : DRV_SUCCESS;
}
unsigned int GetShutterMinTimes(int *minclosing, int *minopening) { ENTER_INIT("GetShutterMinTimes"); *minclosing = 10; *minopening = 10; return DRV_SUCCESS; }
unsigned int SetTriggerMode(int mode) { ENTER_INIT("SetTriggerMode"); return mode == 0 ? DRV_SUCCESS : DRV_P1INVALID; }
unsigned int GetTriggerLevelRange(float *minimum, float *maximum) { ENTER_INIT("GetTriggerLevelRange"); *minimum = 0.5f; *maximum = 4.0f; return DRV_SUCCESS; }
unsigned int SetTriggerLevel(float level) { ENTER_INIT("SetTriggerLevel"); return (level < 0.5f || level > 4.0f) ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int SetTriggerInvert(int mode) { ENTER_INIT("SetTriggerInvert"); return (mode < 0 || mode > 1) ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int SetExternalTriggerTermination(unsigned long termination) { ENTER_INIT("SetExternalTriggerTermination"); return termination > 1 ? DRV_P1INVALID : DRV_SUCCESS; }

/* ---- read-out ---------------------------------------------------------------------------- */

unsigned int SetReadMode(int mode) {
    ENTER_INIT("SetReadMode");
    if (mode < 0 || mode > 4) return DRV_P1INVALID;
    read_mode = mode; return DRV_SUCCESS;
}
unsigned int SetSingleTrack(int centre, int height) {
    ENTER_INIT("SetSingleTrack");
    if (centre < 1 || centre > H) return DRV_P1INVALID;
    return (height < 1 || height > H) ? DRV_P2INVALID : DRV_SUCCESS;
}
unsigned int SetMultiTrack(int number, int height, int offset, int *bottom, int *gap) {
    ENTER_INIT("SetMultiTrack");
    if (number < 1 || number > H) return DRV_P1INVALID;
    if (height < 1 || number * height > H) return DRV_P2INVALID;
    n_tracks = number; *bottom = 1 + offset; *gap = 0; return DRV_SUCCESS;
}
unsigned int SetRandomTracks(int n, int *areas) { ENTER_INIT("SetRandomTracks"); (void)areas; return n < 1 ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int SetImage(int hbin, int vbin, int hstart, int hend, int vstart, int vend) {
    ENTER_INIT("SetImage");
    if (hbin < 1 || hbin > W) return DRV_P1INVALID;
    if (vbin < 1 || vbin > H) return DRV_P2INVALID;
    if (hstart < 1 || hstart > W) return DRV_P3INVALID;
    if (hend < hstart || hend > W || (hend - hstart + 1) % hbin) return DRV_P4INVALID;
    if (vstart < 1 || vstart > H) return DRV_P5INVALID;
    if (vend < vstart || vend > H || (vend - vstart + 1) % vbin) return DRV_P6INVALID;
    image[0] = hbin; image[1] = vbin; image[2] = hstart; image[3] = hend; image[4] = vstart;
    image[5] = vend;
    return DRV_SUCCESS;
}

/* ---- acquisition ------------------------------------------------------------------------- */

unsigned int SetAcquisitionMode(int mode) {
    ENTER_INIT("SetAcquisitionMode");
    if (mode < 1 || mode > 5) return DRV_P1INVALID;
    acq_mode = mode; return DRV_SUCCESS;
}
unsigned int SetExposureTime(float t) { ENTER_INIT("SetExposureTime"); if (t < 0) return DRV_P1INVALID; exposure = t < 1e-5f ? 1e-5f : t; return DRV_SUCCESS; }
unsigned int SetNumberAccumulations(int n) { ENTER_INIT("SetNumberAccumulations"); return n < 1 ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int SetAccumulationCycleTime(float t) { ENTER_INIT("SetAccumulationCycleTime"); return t < 0 ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int SetNumberKinetics(int n) { ENTER_INIT("SetNumberKinetics"); if (n < 1) return DRV_P1INVALID; n_kinetics = n; return DRV_SUCCESS; }
unsigned int SetKineticCycleTime(float t) { ENTER_INIT("SetKineticCycleTime"); if (t < 0) return DRV_P1INVALID; kinetic_cycle = t; return DRV_SUCCESS; }
unsigned int SetFrameTransferMode(int mode) { ENTER_INIT("SetFrameTransferMode"); return (mode < 0 || mode > 1) ? DRV_P1INVALID : DRV_SUCCESS; }
unsigned int PrepareAcquisition(void) { ENTER_INIT("PrepareAcquisition"); return DRV_SUCCESS; }
unsigned int FreeInternalMemory(void) { ENTER_INIT("FreeInternalMemory"); return DRV_SUCCESS; }

static double cycle_s(void) {
    double c = exposure + READOUT_S;
    return (acq_mode == 3 && kinetic_cycle > c) ? kinetic_cycle : c;
}
static long total_frames(void) { return acq_mode == 3 ? n_kinetics : acq_mode == 5 ? (1L << 40) : 1; }
static long frames_done(void) {
    long n;
    if (stopped_frames >= 0) return stopped_frames;
    if (t_start == 0) return 0;
    n = (long)((now() - t_start) / cycle_s());
    if (n >= total_frames()) { n = total_frames(); }
    return n;
}
static void update(void) {
    if (running && frames_done() >= total_frames()) { stopped_frames = total_frames(); running = 0; }
}
unsigned int GetAcquisitionTimings(float *exp, float *accumulate, float *kinetic) {
    ENTER_INIT("GetAcquisitionTimings");
    *exp = exposure; *accumulate = (float)cycle_s(); *kinetic = (float)cycle_s();
    return DRV_SUCCESS;
}
unsigned int GetReadOutTime(float *t) { ENTER_INIT("GetReadOutTime"); *t = (float)READOUT_S; return DRV_SUCCESS; }
unsigned int GetKeepCleanTime(float *t) { ENTER_INIT("GetKeepCleanTime"); *t = 0.001f; return DRV_SUCCESS; }
unsigned int GetSizeOfCircularBuffer(long *size) { ENTER_INIT("GetSizeOfCircularBuffer"); *size = BUFFER_FRAMES; return DRV_SUCCESS; }
unsigned int StartAcquisition(void) {
    ENTER_INIT("StartAcquisition");
    if (running) return DRV_ACQUIRING;
    running = 1; t_start = now(); stopped_frames = -1; return DRV_SUCCESS;
}
unsigned int AbortAcquisition(void) {
    ENTER_INIT("AbortAcquisition");
    if (!running) return DRV_IDLE;
    stopped_frames = frames_done(); running = 0; return DRV_SUCCESS;
}
unsigned int GetStatus(int *status) { ENTER_INIT("GetStatus"); update(); *status = running ? DRV_ACQUIRING : DRV_IDLE; return DRV_SUCCESS; }
unsigned int GetAcquisitionProgress(long *acc, long *series) {
    ENTER_INIT("GetAcquisitionProgress"); update();
    *series = frames_done(); *acc = *series; return DRV_SUCCESS;
}
unsigned int GetTotalNumberImagesAcquired(long *index) { ENTER_INIT("GetTotalNumberImagesAcquired"); *index = frames_done(); return DRV_SUCCESS; }
unsigned int WaitForAcquisitionByHandleTimeOut(long handle, int timeout_ms) {
    double deadline = now() + timeout_ms * 1e-3;
    long before;
    ENTER_INIT("WaitForAcquisitionByHandleTimeOut");
    if (handle != 100) return DRV_P1INVALID;
    before = frames_done();
    while (now() < deadline) {
        struct timespec ts = {0, 1000000};
        if (frames_done() > before) return DRV_SUCCESS;
        if (!running) break;
        nanosleep(&ts, NULL);
    }
    return DRV_NO_NEW_DATA;
}
unsigned int CancelWait(void) { ENTER_INIT("CancelWait"); return DRV_SUCCESS; }

static unsigned short pixel(int col) {
    double x = (col - 256) / 10.0;
    double v = 500.0 + 3000.0 * exp(-0.5 * x * x) * exposure / 0.1;
    return v > 65535 ? 65535 : (unsigned short)v;
}
unsigned int GetImages16(long first, long last, unsigned short *arr, unsigned long size,
                         long *validfirst, long *validlast) {
    long done, rows, cols, per, i;
    ENTER_INIT("GetImages16");
    update();
    done = frames_done();
    if (first < 1 || first > done || first < done - BUFFER_FRAMES + 1) return DRV_P1INVALID;
    if (last < first || last > done) return DRV_P2INVALID;
    if (read_mode == 4) {
        cols = (image[3] - image[2] + 1) / image[0];
        rows = (image[5] - image[4] + 1) / image[1];
    } else {
        cols = W;
        rows = read_mode == 1 ? n_tracks : 1;     /* multi-track: one row per track */
    }
    per = rows * cols;
    if ((long)size < per * (last - first + 1)) return DRV_P4INVALID;
    for (i = 0; i < per * (last - first + 1); i++) {
        long c = i % cols;
        arr[i] = read_mode == 4 ? pixel(image[2] - 1 + c * image[0]) : pixel(c);
    }
    *validfirst = first; *validlast = last;
    return DRV_SUCCESS;
}
unsigned int GetNumberNewImages(long *first, long *last) {
    ENTER_INIT("GetNumberNewImages");
    *last = frames_done();
    if (*last == 0) return DRV_NO_NEW_DATA;
    *first = *last > BUFFER_FRAMES ? *last - BUFFER_FRAMES + 1 : 1;
    return DRV_SUCCESS;
}
