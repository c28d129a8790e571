/*
 * spad's own declarations of the PicoQuant TTTR library functions the fake (fakepq.c) defines,
 * written for these tests: the C signature of each is the one spad's driver declares through
 * ctypes (drivers/picoquant/library.py), and the limits, flag bits and error codes below are
 * the values the driver relies on (drivers/picoquant/constants.py), as documented by PicoQuant
 * for HHLib v3.0, MHLib v3.x and PHLib v3.0 (the libraries' manuals and headers).
 *
 * With SPAD_PICOQUANT_HEADERS set, tests/test_driver_picoquant_headers.py compiles fakepq.c
 * against PicoQuant's own headers instead (-DPQ_VENDOR_HEADERS) and checks all of this
 * against them.
 *
 * fakepq.c defines P(name) (the family's function prefix) and one of FAM_HH, FAM_MH, FAM_PH
 * before including this file.
 */
#ifndef SPAD_FAKEPQ_DECL_H
#define SPAD_FAKEPQ_DECL_H

/* ---- return codes (the same numbers in the three libraries; PQ_ERROR_x is HH_ERROR_x in
 *      HHLib, MH_ERROR_x in MHLib and ERROR_x in PHLib) ---------------------------------- */
enum {
    PQ_ERROR_DEVICE_OPEN_FAIL = -1,
    PQ_ERROR_DEVICE_NOT_OPEN = -10,
    PQ_ERROR_INSTANCE_RUNNING = -16,
    PQ_ERROR_INVALID_ARGUMENT = -17,
    PQ_ERROR_INVALID_MODE = -18,
    PQ_ERROR_NOT_INITIALIZED = -22,
    PQ_ERROR_USB_BULKRD_FAIL = -37,
};

/* ---- limits and flag bits, per family (only those the fake checks or raises) ---------- */

/* common to the three: measurement time in ms (1 ms to 100 h) */
#define ACQTMIN 1
#define ACQTMAX 360000000
#define SYNCDIVMIN 1

#if defined(FAM_HH)
#define TTREADMAX (128 * 1024)      /* records per ReadFiFo call, at most */
#define SYNCDIVMAX 16
#define DISCRMIN 0                  /* CFD discriminator level, mV */
#define DISCRMAX 1000
#define ZCMIN 0                     /* CFD zero cross level, mV */
#define ZCMAX 40
#define CHANOFFSMIN (-99999)        /* sync and input channel offsets, ps */
#define CHANOFFSMAX 99999
#define FLAG_FIFOFULL 0x02
#define FLAG_SYNC_LOST 0x04
#define FLAG_REF_LOST 0x08
#define FLAG_SYSERROR 0x10
#define FLAG_ACTIVE 0x20

#elif defined(FAM_MH)
#define TTREADMAX (1024 * 1024)     /* ReadFiFo always wants a buffer of this many records */
#define SYNCDIVMAX 16
#define TRGLVLMIN (-1200)           /* edge trigger level, mV */
#define TRGLVLMAX 1200
#define EDGE_FALLING 0
#define EDGE_RISING 1
#define CHANOFFSMIN (-99999)        /* ps */
#define CHANOFFSMAX 99999
#define FLAG_FIFOFULL 0x02
#define FLAG_SYNC_LOST 0x04
#define FLAG_REF_LOST 0x08
#define FLAG_SYSERROR 0x10
#define FLAG_ACTIVE 0x20
#define FLAG_CNTS_DROPPED 0x40

#elif defined(FAM_PH)
/* The PicoHarp differs: a divider of at most 8, a CFD of 0-800 mV with a zero cross of at
 * most 20 mV, a sync offset instead of channel offsets, FIFO full as two bits, the system
 * error at bit 8, and no "active", sync-lost, reference-lost or counts-dropped flag. */
#define TTREADMAX (128 * 1024)
#define SYNCDIVMAX 8
#define DISCRMIN 0
#define DISCRMAX 800
#define ZCMIN 0
#define ZCMAX 20
#define SYNCOFFSMIN (-99999)        /* ps */
#define SYNCOFFSMAX 99999
#define FLAG_FIFOFULL 0x0003
#define FLAG_SYSERROR 0x0100
#endif

/* ---- functions: every argument as the driver passes it (char* = ctypes c_char_p, ...) --- */

/* all three families */
int P(GetLibraryVersion)(char *version);
int P(GetErrorString)(char *text, int code);
int P(OpenDevice)(int devidx, char *serial);
int P(CloseDevice)(int devidx);
int P(GetHardwareInfo)(int devidx, char *model, char *partno, char *version);
int P(GetSerialNumber)(int devidx, char *serial);
int P(GetBaseResolution)(int devidx, double *resolution_ps, int *binsteps);
int P(SetSyncDiv)(int devidx, int divider);
int P(SetBinning)(int devidx, int binning);
int P(SetOffset)(int devidx, int offset);
int P(GetResolution)(int devidx, double *resolution_ps);
int P(GetCountRate)(int devidx, int channel, int *rate);
int P(GetWarnings)(int devidx, int *warnings);
int P(GetWarningsText)(int devidx, char *text, int warnings);
int P(StartMeas)(int devidx, int tacq_ms);
int P(StopMeas)(int devidx);
int P(CTCStatus)(int devidx, int *done);
int P(GetFlags)(int devidx, int *flags);

#if defined(FAM_PH)
int P(Initialize)(int devidx, int mode);                    /* no reference source */
#else
int P(Initialize)(int devidx, int mode, int refsource);
#endif

#if defined(FAM_HH) || defined(FAM_MH)
int P(GetNumOfInputChannels)(int devidx, int *n);
int P(SetSyncChannelOffset)(int devidx, int offset_ps);
int P(SetInputChannelOffset)(int devidx, int channel, int offset_ps);
int P(GetSyncRate)(int devidx, int *rate);
#endif

#if defined(FAM_HH) || defined(FAM_PH)                     /* CFD inputs */
int P(Calibrate)(int devidx);
int P(SetInputCFD)(int devidx, int channel, int level_mv, int zerocross_mv);
#endif
#if defined(FAM_HH)
int P(SetSyncCFD)(int devidx, int level_mv, int zerocross_mv);
#endif

#if defined(FAM_MH)                                         /* edge-trigger inputs */
int P(SetSyncEdgeTrg)(int devidx, int level_mv, int edge);
int P(SetInputEdgeTrg)(int devidx, int channel, int level_mv, int edge);
#endif

#if defined(FAM_PH)
int P(SetSyncOffset)(int devidx, int offset_ps);
#endif

#if defined(FAM_MH)                          /* no count: the buffer holds TTREADMAX records */
int P(ReadFiFo)(int devidx, unsigned int *buffer, int *nactual);
#else
int P(ReadFiFo)(int devidx, unsigned int *buffer, int count, int *nactual);
#endif

#endif /* SPAD_FAKEPQ_DECL_H */
