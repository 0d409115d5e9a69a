/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Register map of the lab's PCIe FPGA persistent-memory device (seed 5.2.3).
 *
 * The map is NOT public: every value below marked FILL is a placeholder to be
 * replaced from the device documentation before flashing the board. The ring
 * and queue logic in fpga.c only uses these names, and the host tests run it
 * against a C model (tests/firmware/c/fpga_model.c) built on the same names.
 */
#ifndef WPP_FPGA_REGS_H
#define WPP_FPGA_REGS_H

/* PCI identity and the BAR holding the registers. FILL */
#define FPGA_PCI_VENDOR_ID		0x10ee		/* FILL (Xilinx default shown) */
#define FPGA_PCI_DEVICE_ID		0x9038		/* FILL */
#define FPGA_REG_BAR			0		/* FILL: BAR index of the registers */

/* Control / status. FILL offsets and bits. */
#define FPGA_REG_CTRL			0x0000
#define  FPGA_CTRL_RESET		(1U << 0)
#define  FPGA_CTRL_ENABLE		(1U << 1)
#define FPGA_REG_STATUS			0x0004
#define  FPGA_STATUS_READY		(1U << 0)
#define  FPGA_STATUS_ERROR		(1U << 1)
#define FPGA_REG_DEV_SIZE_LO		0x0008		/* persistent memory size */
#define FPGA_REG_DEV_SIZE_HI		0x000c

/*
 * One request ring per direction. The driver writes entries into host memory
 * and publishes the index after the newest entry in TAIL; the device reports
 * how many requests it has completed in DONE (free-running 32-bit count).
 */
#define FPGA_Q_WRITE			0	/* host memory -> persistent memory */
#define FPGA_Q_READ			1	/* persistent memory -> host memory */
#define FPGA_REG_Q_STRIDE		0x0100
#define FPGA_REG_Q_BASE_LO(q)		(0x0100 + (q) * FPGA_REG_Q_STRIDE)
#define FPGA_REG_Q_BASE_HI(q)		(0x0104 + (q) * FPGA_REG_Q_STRIDE)
#define FPGA_REG_Q_SIZE(q)		(0x0108 + (q) * FPGA_REG_Q_STRIDE)	/* entries */
#define FPGA_REG_Q_TAIL(q)		(0x010c + (q) * FPGA_REG_Q_STRIDE)	/* doorbell */
#define FPGA_REG_Q_DONE(q)		(0x0110 + (q) * FPGA_REG_Q_STRIDE)
#define FPGA_REG_Q_ERROR(q)		(0x0114 + (q) * FPGA_REG_Q_STRIDE)	/* failed count */

/* Ring geometry: every 128th entry (index % 128 == 127) is unusable (seed). */
#define FPGA_RING_ENTRIES		1024		/* FILL: power of two */
#define FPGA_RING_SKIP_PERIOD		128
#define FPGA_MAX_XFER			(64U * 1024)	/* FILL: bytes per request */

/* Ring entry as the device reads it (little-endian). FILL layout. */
struct fpga_request {
	unsigned long long host_addr;	/* physical address in host RAM */
	unsigned long long dev_addr;	/* byte offset in persistent memory */
	unsigned int length;		/* bytes, <= FPGA_MAX_XFER */
	unsigned int flags;		/* FPGA_REQ_F_* */
};

#define FPGA_REQ_F_VALID		(1U << 0)

#endif /* WPP_FPGA_REGS_H */
