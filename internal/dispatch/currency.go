package dispatch

import "strings"

// The currencies an account can hold: the active alphabetic codes of ISO
// 4217 (list one, as published on 2026-01-01) that have a minor unit, by the
// number of decimals of that unit. Amounts are whole minor units, so a code
// that ISO gives no minor unit ("N.A.") cannot hold money here and is
// refused: the precious metals XAU, XAG, XPD and XPT, the bond-market units
// XBA to XBD, the SDR XDR, the Sucre XSU, the ADB unit XUA, the testing code
// XTS and XXX, "no currency". Codes ISO withdrew (HRK, ANG, ZWL, ...) are not
// listed. The fund codes that have a minor unit (CHE, CLF, USN, ...) are
// listed, as ISO lists them. Codes are capitals only, as ISO writes them.
var currencyDecimals = func() map[string]int {
	byDecimals := [...]string{
		0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
		2: "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE " +
			"CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD " +
			"HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK " +
			"MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD " +
			"RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH " +
			"USD USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG",
		3: "BHD IQD JOD KWD LYD OMR TND",
		4: "CLF UYW",
	}
	m := make(map[string]int, 165)
	for decimals, codes := range byDecimals {
		for _, c := range strings.Fields(codes) {
			m[c] = decimals
		}
	}
	return m
}()

// isCurrency reports whether code is a currency an account can hold.
func isCurrency(code string) bool {
	_, ok := currencyDecimals[code]
	return ok
}

// currencyMessage is the field error for a code that is not one.
const currencyMessage = "must be an active ISO 4217 currency code in capitals, such as EUR; codes without a minor unit (XXX, XTS, XAU, ...) are refused"
